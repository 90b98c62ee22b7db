//! What tests and benchmarks need to run parsec for real (feature `test-utils`; nothing of it is
//! in the release binary): a throwaway PostgreSQL started from the system's binaries, `parsec`
//! processes as users run them, and the rows a database holds, read back.

pub mod peer_scripts;
pub mod postgres;
pub mod process;
pub mod stored;

pub use self::postgres::TempPostgres;
