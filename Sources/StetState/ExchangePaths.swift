import CSys

/// Exchanges two paths atomically (`renameat2` with `RENAME_EXCHANGE`); false with `errno` set
/// when it cannot. In a file of its own: importing the C module beside public API would make
/// the types it also declares (`mode_t`) internal there.
func exchangePaths(_ a: String, _ b: String) -> Bool { stet_rename_exchange(a, b) == 0 }
