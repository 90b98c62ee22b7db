//! A peer's record store: kad's `MemoryStore` for value records, and provider records kept
//! compactly.
//!
//! kad's `MemoryStore` keeps each key's providers in a `SmallVec` of `k` inline slots: about
//! 4.5 KB a key whatever it holds (20 slots of a provider record each), so 100,000 keys of one
//! provider each take 450 MB, and a testnet of 200 peers storing a 10⁵-CID sweep's 2 × 10⁶ copies
//! took 9.4 GB. Here a key's providers are a `Vec` sized to what it holds (about 300 bytes a key of
//! one provider); the limits and the rules (an update in place, a full key ignoring new providers,
//! our own records also listed as provided) are `MemoryStore`'s.

use std::{
    borrow::Cow,
    collections::{hash_map, HashMap, HashSet},
};

use libp2p::{
    kad::{
        self,
        store::{self, MemoryStore, RecordStore},
        ProviderRecord, Record, RecordKey,
    },
    PeerId,
};

/// Value records in kad's store; provider records in a map sized to what each key holds.
pub(crate) struct PeerStore {
    values: MemoryStore,
    local: PeerId,
    providers: HashMap<RecordKey, Vec<ProviderRecord>>,
    provided: HashSet<ProviderRecord>,
    max_provided_keys: usize,
    max_providers_per_key: usize,
}

impl PeerStore {
    /// A store of peer `local` holding up to `max_keys` value records and provided keys, and
    /// `max_providers_per_key` providers a key.
    pub(crate) fn new(local: PeerId, max_keys: usize, max_providers_per_key: usize) -> Self {
        let values = MemoryStore::with_config(
            local,
            store::MemoryStoreConfig {
                max_records: max_keys,
                ..store::MemoryStoreConfig::default()
            },
        );
        Self {
            values,
            local,
            providers: HashMap::new(),
            provided: HashSet::new(),
            max_provided_keys: max_keys,
            max_providers_per_key,
        }
    }
}

impl RecordStore for PeerStore {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;
    type ProvidedIter<'a> = std::iter::Map<
        std::collections::hash_set::Iter<'a, ProviderRecord>,
        fn(&'a ProviderRecord) -> Cow<'a, ProviderRecord>,
    >;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        self.values.get(k)
    }

    fn put(&mut self, r: Record) -> store::Result<()> {
        self.values.put(r)
    }

    fn remove(&mut self, k: &RecordKey) {
        self.values.remove(k);
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.values.records()
    }

    fn add_provider(&mut self, record: ProviderRecord) -> store::Result<()> {
        let keys = self.providers.len();
        let providers = match self.providers.entry(record.key.clone()) {
            hash_map::Entry::Occupied(entry) => entry.into_mut(),
            hash_map::Entry::Vacant(_) if keys >= self.max_provided_keys => {
                return Err(store::Error::MaxProvidedKeys)
            }
            hash_map::Entry::Vacant(entry) => entry.insert(Vec::with_capacity(1)),
        };
        if let Some(existing) = providers.iter_mut().find(|p| p.provider == record.provider) {
            if record.provider == self.local {
                self.provided.remove(existing);
                self.provided.insert(record.clone());
            }
            *existing = record;
            return Ok(());
        }
        // A full key ignores new providers (kad's defence against flooding with fake records).
        if providers.len() >= self.max_providers_per_key {
            return Ok(());
        }
        if record.provider == self.local {
            self.provided.insert(record.clone());
        }
        providers.push(record);
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        self.providers.get(key).cloned().unwrap_or_default()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.provided.iter().map(Cow::Borrowed)
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        if let hash_map::Entry::Occupied(mut entry) = self.providers.entry(key.clone()) {
            let providers = entry.get_mut();
            if let Some(i) = providers.iter().position(|p| &p.provider == provider) {
                let removed = providers.swap_remove(i);
                if removed.provider == self.local {
                    self.provided.remove(&removed);
                }
            }
            if providers.is_empty() {
                entry.remove();
            }
        }
    }
}

/// The kad behaviour of our peers.
pub(crate) type Kad = kad::Behaviour<PeerStore>;

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &[u8], provider: PeerId) -> ProviderRecord {
        ProviderRecord::new(RecordKey::new(&key), provider, Vec::new())
    }

    #[test]
    fn providers_follow_kads_rules_and_limits() {
        let local = PeerId::random();
        let mut store = PeerStore::new(local, 2, 2);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        store.add_provider(record(b"x", a)).unwrap();
        store.add_provider(record(b"x", a)).unwrap();
        store.add_provider(record(b"x", b)).unwrap();
        // A full key ignores a third provider.
        store.add_provider(record(b"x", c)).unwrap();
        let providers: Vec<PeerId> = store
            .providers(&RecordKey::new(b"x"))
            .into_iter()
            .map(|r| r.provider)
            .collect();
        assert_eq!(providers, vec![a, b]);
        // Our own record is listed as provided; a third key is refused.
        store.add_provider(record(b"y", local)).unwrap();
        assert_eq!(store.provided().count(), 1);
        assert!(matches!(
            store.add_provider(record(b"z", a)),
            Err(store::Error::MaxProvidedKeys)
        ));
        store.remove_provider(&RecordKey::new(b"y"), &local);
        assert_eq!(store.provided().count(), 0);
        assert!(store.providers(&RecordKey::new(b"y")).is_empty());
        store.add_provider(record(b"z", a)).unwrap();
    }
}
