import CSys
import Foundation
import StetProviders

/// One replica of a service: `web#1`.
struct ReplicaKey: Hashable, Sendable, CustomStringConvertible {
    let service: String
    let index: Int
    var description: String { "\(service)#\(index)" }
}

/// The loop's news of replicas' exits: a pidfd per running replica, readable the moment the
/// process ends; where the kernel has no pidfds, `/proc` is looked at every 250 ms instead.
/// Used by the loop's thread only.
final class ReplicaWatchers {
    private struct Watched {
        /// Nil where no pidfd could be had: polled.
        let fd: Int32?
        /// The pidfd's device and inode when it was opened: `runs` trusts the number only while
        /// it is still that file (not another, should the number ever be closed and reused).
        let file: (device: UInt64, inode: UInt64)?
        let pid: Int32
        let startTime: UInt64
    }

    private var watched: [ReplicaKey: Watched] = [:]

    deinit {
        for entry in watched.values { if let fd = entry.fd { close(fd) } }
    }

    var keys: [ReplicaKey] { Array(watched.keys) }

    /// What `sync` found.
    struct Changes {
        /// Services with a replica found gone whose exit no pass has recorded yet: each needs a pass.
        var unrecorded: Set<String> = []
        /// Replicas no longer watched as they were (gone, or replaced by another process).
        var stopped: [ReplicaKey] = []
        /// The records of every replica watched now.
        var watched: [ReplicaProvider.Record] = []
    }

    /// True when `record`'s process is watched through a pidfd and has not ended: the pidfd is
    /// that very process's, so this needs no look at `/proc` (which every pass made for every
    /// replica). False when it ended, or is not watched so (then ask `ProcessTable`).
    func runs(_ record: ReplicaProvider.Record) -> Bool {
        guard let entry = watched[ReplicaKey(service: record.service, index: record.index)], entry.pid == record.pid,
            entry.startTime == record.startTime, let fd = entry.fd, let file = entry.file,
            let current = Self.file(fd), current == file
        else { return false }
        var ended = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&ended, 1, 0) == 0
    }

    private static func file(_ fd: Int32) -> (device: UInt64, inode: UInt64)? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return (UInt64(info.st_dev), UInt64(info.st_ino))
    }

    /// `ProcessTable.isAlive`, answered by the replica's pidfd when it is watched.
    func isAlive(_ record: ReplicaProvider.Record) -> Bool {
        runs(record) || ProcessTable.isAlive(record.pid, startTime: record.startTime)
    }

    /// Watches every live replica of `records` and stops watching the rest.
    func sync(_ records: [String: [Int: ReplicaProvider.Record]]) -> Changes {
        var changes = Changes()
        var wanted: Set<ReplicaKey> = []
        for (service, byIndex) in records {
            for (index, record) in byIndex {
                let key = ReplicaKey(service: service, index: index)
                guard isAlive(record) else {
                    if record.exitedAt == nil { changes.unrecorded.insert(service) }
                    continue
                }
                if let current = watched[key], current.pid == record.pid, current.startTime == record.startTime {
                    wanted.insert(key)
                    changes.watched.append(record)
                    continue
                }
                let fd = stet_pidfd_open(record.pid)
                // The pid may have been reused between the check and the open: check again.
                guard ProcessTable.isAlive(record.pid, startTime: record.startTime) else {
                    if fd >= 0 { close(fd) }
                    changes.unrecorded.insert(service)
                    continue
                }
                if let old = watched.removeValue(forKey: key) {
                    if let fd = old.fd { close(fd) }
                    changes.stopped.append(key)
                }
                wanted.insert(key)
                watched[key] = Watched(fd: fd >= 0 ? fd : nil, file: fd >= 0 ? Self.file(fd) : nil, pid: record.pid, startTime: record.startTime)
                changes.watched.append(record)
            }
        }
        for (key, entry) in watched where !wanted.contains(key) {
            if let fd = entry.fd { close(fd) }
            watched[key] = nil
            changes.stopped.append(key)
        }
        return changes
    }

    /// Sleeps in `poll` until a watched replica ends, `wake` is readable, or `timeout`
    /// milliseconds pass. Returns the replicas that ended (with their pids), no longer watched.
    func wait(wake: Int32, timeout: Int32) -> [(key: ReplicaKey, pid: Int32)] {
        let keys = watched.compactMap { $0.value.fd == nil ? nil : $0.key }
        var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            + keys.map { pollfd(fd: watched[$0]!.fd!, events: Int16(POLLIN), revents: 0) }
        let polling = watched.values.contains { $0.fd == nil }
        _ = poll(&fds, nfds_t(fds.count), polling ? min(timeout, 250) : timeout)
        var ended: [(key: ReplicaKey, pid: Int32)] = []
        for (offset, key) in keys.enumerated() where fds[offset + 1].revents != 0 {
            ended.append((key, watched[key]!.pid))
        }
        for (key, entry) in watched where entry.fd == nil && !ProcessTable.isAlive(entry.pid, startTime: entry.startTime) {
            ended.append((key, entry.pid))
        }
        for (key, _) in ended {
            if let fd = watched.removeValue(forKey: key)?.fd { close(fd) }
        }
        return ended
    }
}
