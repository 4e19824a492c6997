public import Foundation

/// The user a replica runs as. A replica running as Stet's own user could write the state
/// directory (its log's descriptor names the folder: `/proc/self/fd/2`) and damage the audit
/// log or a record. So when Stet runs as root, every replica runs as an unprivileged user:
/// `spec.run.user`, or by default the dedicated system user `stet-replica`, which Stet creates
/// (no home, no login shell) the first time it needs it. The state directory and the logs
/// folder are 0700 and the log files 0600, all Stet's: the replica holds its log only as an
/// open descriptor and can reach nothing else of Stet's.
///
/// When Stet is not root it cannot switch users, and replicas run as Stet's user as before
/// (docs/security.md says what such a replica can do); naming another user is then an error.
public struct ReplicaUser: Sendable, Equatable {
    public let name: String
    public let uid: uid_t
    public let gid: gid_t
    /// Supplementary groups (the user's groups from the group database, with `gid`).
    public let groups: [gid_t]

    /// The user replicas run as when the service names none and Stet is root.
    public static let defaultName = "stet-replica"
    /// Most supplementary groups taken for a user (Linux allows 65,536).
    static let maximumGroups = 65_536

    /// Who replica processes of a service with `spec.run.user` = `name` run as: nil keeps
    /// Stet's own user (Stet is not root, and `name` is nil or Stet's own user). Throws
    /// `Failure` with what to do when the user is missing, is root, or cannot be switched to.
    public static func resolve(_ name: String?, effectiveUID: uid_t = geteuid()) throws -> ReplicaUser? {
        if effectiveUID != 0 {
            guard let name else { return nil }
            guard let user = try lookUp(name) else { throw Failure("spec.run.user: there is no user \"\(name)\" on this host") }
            if user.uid == effectiveUID { return nil }
            throw Failure(
                "spec.run.user is \"\(name)\", but Stet runs as uid \(effectiveUID), not root, and cannot start "
                    + "processes as another user")
        }
        let wanted = name ?? defaultName
        var user = try lookUp(wanted)
        if user == nil, name == nil {
            try create(defaultName)
            user = try lookUp(defaultName)
        }
        guard let user else {
            throw Failure(
                "spec.run.user: there is no user \"\(wanted)\" on this host; create it (e.g. `useradd --system "
                    + "--no-create-home --shell /usr/sbin/nologin \(wanted)`) or name another")
        }
        guard user.uid != 0 else {
            throw Failure(
                "spec.run.user: \"\(wanted)\" has uid 0; a replica running as root could change Stet's state and audit "
                    + "log, so replicas run as an unprivileged user")
        }
        return user
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// The user `name` from the user database, with its groups; nil when there is none. A user
    /// found is kept for up to `cacheSeconds` while `/etc/passwd` and `/etc/group` stay as they
    /// were: a replica's replacement does not wait on NSS (which opens a dozen files).
    static func lookUp(_ name: String) throws -> ReplicaUser? {
        let stamp = DatabaseStamp.now()
        if let cached = cache.user(name, stamp: stamp) { return cached }
        let user = try lookUpUncached(name)
        if let user { cache.keep(user, stamp: stamp) }
        return user
    }

    static let cacheSeconds = 10.0
    static let cache = Cache()

    /// How the files of the user database look: a user kept is used only while they look so.
    struct DatabaseStamp: Equatable {
        var files: [String]

        static func now() -> DatabaseStamp {
            DatabaseStamp(files: ["/etc/passwd", "/etc/group"].map { path in
                var info = stat()
                guard stat(path, &info) == 0 else { return "none" }
                return "\(info.st_ino) \(info.st_size) \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
            })
        }
    }

    final class Cache: @unchecked Sendable {
        private let lock = NSLock()
        private var users: [String: (user: ReplicaUser, stamp: DatabaseStamp, at: UInt64)] = [:]

        func user(_ name: String, stamp: DatabaseStamp) -> ReplicaUser? {
            lock.withLock {
                guard let kept = users[name], kept.stamp == stamp,
                    DispatchTime.now().uptimeNanoseconds - kept.at < UInt64(ReplicaUser.cacheSeconds * 1e9)
                else { return nil }
                return kept.user
            }
        }

        func keep(_ user: ReplicaUser, stamp: DatabaseStamp) {
            lock.withLock {
                if users.count > 64 { users = [:] }
                users[user.name] = (user, stamp, DispatchTime.now().uptimeNanoseconds)
            }
        }
    }

    static func lookUpUncached(_ name: String) throws -> ReplicaUser? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        var rc = getpwnam_r(name, &entry, &buffer, buffer.count, &found)
        while rc == ERANGE, buffer.count < 1 << 20 {
            buffer = [CChar](repeating: 0, count: buffer.count * 4)
            rc = getpwnam_r(name, &entry, &buffer, buffer.count, &found)
        }
        guard rc == 0 else { throw Failure("cannot look up user \"\(name)\": \(String(cString: strerror(rc)))") }
        guard found != nil else { return nil }
        let uid = entry.pw_uid, gid = entry.pw_gid
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        while getgrouplist(name, gid, &groups, &count) < 0 {
            guard Int(count) <= maximumGroups, Int(count) > groups.count else {
                throw Failure("user \"\(name)\" is in more than \(maximumGroups) groups")
            }
            groups = [gid_t](repeating: 0, count: Int(count))
        }
        return ReplicaUser(name: name, uid: uid, gid: gid, groups: Array(groups.prefix(Int(count))))
    }

    /// Creates the dedicated system user: no home, no login shell, a group of its own. Another
    /// Stet creating it at the same moment is fine (the caller looks it up again).
    static func create(_ name: String) throws {
        let useradd = ["/usr/sbin/useradd", "/sbin/useradd"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let howTo = "useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --user-group \(name)"
        guard let useradd else { throw Failure("there is no user \"\(name)\" and no useradd to create it; create it: \(howTo)") }
        let output: Subprocess.Output
        do {
            output = try Subprocess.run(
                useradd,
                ["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--user-group", name],
                environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], timeout: 30, maximumOutput: 64 << 10)
        } catch {
            throw Failure("cannot create user \"\(name)\" (\(howTo)): \(error)")
        }
        // 9: the name is taken, by another Stet creating it meanwhile.
        guard output.status == 0 || output.status == 9 else {
            throw Failure(
                "cannot create user \"\(name)\": useradd exited \(output.status): "
                    + String(output.stderr.prefix(500)).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
