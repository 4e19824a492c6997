import Foundation

/// The process's limit on open files (RLIMIT_NOFILE), from which the status server's share is
/// carved, so that clients can never take the descriptors the loop needs for its lock, its
/// state files and its replicas.
public enum OpenFileLimit {
    /// Raises the soft limit to the hard one (systemd's default soft limit is 1,024 beside a
    /// hard limit of 524,288), and returns the soft limit now in force.
    @discardableResult
    public static func raise() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return current }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
        }
        return current
    }

    /// The soft limit in force (1,024 when it cannot be read).
    public static var current: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: limit.rlim_cur)  // RLIM_INFINITY is the largest rlim_t
    }
}
