//! Command-line options of the benchmarks (`cargo bench --bench X -- --name value`).

/// The number after `name` on the command line, or `default`.
pub(crate) fn option(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map(|pair| {
            pair[1]
                .parse()
                .unwrap_or_else(|_| panic!("{name} needs a number"))
        })
        .unwrap_or(default)
}
