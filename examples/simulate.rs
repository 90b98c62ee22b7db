//! A Rust harness driving the simulator directly: build a network, provide a record, retrieve it
//! from every region, then see how a lower alpha changes lookups.
//!
//! Run: `cargo run --release --example simulate`

use parsec::sim::{KademliaConfig, Key, LookupConfig, SimConfig, Simulation};

fn main() -> Result<(), String> {
    let config = SimConfig {
        nodes: 20_000,
        ..SimConfig::default()
    };
    let mut sim = Simulation::build(&config, |_| {})?;
    let regions = sim.network().region_model().names.clone();

    let content = Key::hash_of(b"hello, DHT");
    let provider = 0;
    sim.network_mut().set_reachable(provider, true);
    let provided = sim.provide(provider, content);
    println!(
        "provide from {}: {:.3} s virtual, {} hops, {} messages, stored at {} peers",
        regions[usize::from(sim.network().region(provider))],
        provided.duration.as_secs_f64(),
        provided.hops,
        provided.messages,
        provided.peers.len()
    );

    // One retriever per region: the first node of each.
    for (index, name) in regions.iter().enumerate() {
        let Some(from) =
            (1..sim.network().len() as u32).find(|&n| usize::from(sim.network().region(n)) == index)
        else {
            continue;
        };
        let outcome = sim.retrieve(from, content);
        println!(
            "retrieve from {name}: {:.3} s, {} hops, {} messages{}",
            outcome.duration.as_secs_f64(),
            outcome.hops,
            outcome.messages,
            outcome
                .error
                .map_or_else(String::new, |e| format!(", error: {e}"))
        );
    }

    // Lookups only read the network: the same 200 targets under three alphas.
    for alpha in [1, 3, 5] {
        let sim = Simulation::build(
            &SimConfig {
                kademlia: KademliaConfig {
                    lookup: LookupConfig {
                        alpha,
                        ..LookupConfig::default()
                    },
                    ..KademliaConfig::default()
                },
                ..config.clone()
            },
            |_| {},
        )?;
        let outcomes: Vec<_> = (0..200u32)
            .map(|i| sim.lookup(i, Key::hash_of(&i.to_be_bytes())))
            .collect();
        let mut durations: Vec<f64> = outcomes.iter().map(|o| o.duration.as_secs_f64()).collect();
        durations.sort_by(f64::total_cmp);
        let messages: u32 = outcomes.iter().map(|o| o.messages).sum();
        println!(
            "alpha {alpha}: lookup p50 {:.3} s, {:.1} messages per lookup",
            durations[durations.len() / 2],
            f64::from(messages) / outcomes.len() as f64
        );
    }
    Ok(())
}
