//! Enums named by short words in flags, fleets and rows (`default`, `optprov`, `warm`,
//! `ipfs-2025`): [`impl_named!`](crate::impl_named) writes their `Display` (the name) and
//! `FromStr` (the name back, or an error that lists the names there are), so every such enum
//! reads and fails alike.

/// `Display` and `FromStr` for `$type`, which has `const ALL: [Self; N]` and
/// `fn name(self) -> &'static str`; `$what` names the kind in the error, e.g.
/// `unknown strategy "fast": expected classic, optprov or fullrt`.
#[macro_export]
macro_rules! impl_named {
    ($type:ty, $what:literal) => {
        impl ::std::fmt::Display for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $type {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| {
                        format!(
                            "unknown {} {s:?}: expected {}",
                            $what,
                            $crate::named::choices(&Self::ALL.map(Self::name))
                        )
                    })
            }
        }
    };
}

/// `a, b or c`: the names a reader may choose from.
pub fn choices(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::choices;

    #[test]
    fn choices_read_as_a_list() {
        assert_eq!(choices(&["warm", "cold"]), "warm or cold");
        assert_eq!(choices(&["a", "b", "c"]), "a, b or c");
        assert_eq!(choices(&["only"]), "only");
    }
}
