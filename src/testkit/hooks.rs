//! Hooks for the library's own tests: what the C ABI does not show (whether the shared
//! I/O thread runs, how many library threads are alive) and faults it cannot cause (a
//! panicking I/O driver). Behind the `testkit` feature, like the rest of this module.

use crate::ffi::lanscape::SIPHANDLE;

/// Transactions the engine keeps in flight towards one next hop at most.
pub const MAX_IN_FLIGHT_PER_HOP: usize = crate::engine::endpoint::MAX_IN_FLIGHT_PER_HOP;

/// Whether the I/O thread shared by every engine and registry is running.
pub fn io_service_running() -> bool {
    crate::runtime::service::is_running()
}

/// Library threads still alive: the I/O thread and any not yet joined.
pub fn io_threads_alive() -> usize {
    crate::runtime::service::live_threads()
}

/// Whether the profile registries' shared registration service is running.
pub fn profile_service_running() -> bool {
    crate::api::profiles::service_running()
}

/// Makes the I/O driver of an engine panic; `false` when the handle is not an engine.
pub fn break_engine_driver(engine: SIPHANDLE) -> bool {
    crate::ffi::lanscape::inject_driver_panic(engine)
}

/// Makes the I/O driver of the profile registration service panic.
pub fn break_profile_service_driver() {
    crate::api::profiles::inject_driver_panic()
}

/// The names list of `EnableSipRegisterServer`, split and checked (for the fuzz target).
pub fn parse_names(list: &str) -> Result<Vec<std::sync::Arc<str>>, String> {
    crate::api::address::parse_names(list).map_err(|e| e.to_string())
}
