//! Records the resolved dependency versions (from Cargo.lock) so servers and schedulers can store
//! exactly what they were built from in their `dependencies` column.
fn main() {
    built::write_built_file().expect("writing build information");
}
