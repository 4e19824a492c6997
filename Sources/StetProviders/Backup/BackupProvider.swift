public import Foundation
public import StetCore
import StetCrypto
public import StetState

/// Backups with restic (docs/architecture.md, "Manifests" to "Observing and planning"). Stet owns the policy (when to back up, what
/// to keep, what to verify) and restic the data. Snapshots of policy NAME carry the tag
/// `stet:NAME`. What Stet learns is kept in `STATE/backup/NAME.json`; the snapshot list of each
/// repository is cached in `STATE/backup/cache/`, refreshed after Stet's own writes or when
/// older than `cacheLifetime`, so observing many policies does not open every repository on
/// every pass.
public struct BackupProvider: Provider {
    public let store: any StateStore
    public let baseDirectory: String
    public var restic = Restic()
    public var cacheLifetime: Double = 300
    /// `check --read-data-subset n/N`: every pack is read over this many checks.
    public var checkSubsets = 5

    public init(store: any StateStore, baseDirectory: String = FileManager.default.currentDirectoryPath) {
        self.store = store
        self.baseDirectory = baseDirectory
    }

    // MARK: - State

    public struct Record: Codable, Sendable, Equatable {
        public var name: String
        public var repository: String
        public var known = false
        public var protect = false
        public var lastBackup: Date?
        public var lastSnapshot: String?
        public var lastWarning: String?
        public var lastForget: Date?
        public var lastCheck: ObservedBackup.Verification?
        public var checkIndex = 0
        public var lastRestoreTest: ObservedBackup.Verification?
        /// What Stet learnt of snapshots (their size when it made them, their restore tests),
        /// the newest last, at most `factsLimit`.
        public var snapshots: [SnapshotFacts]?
    }

    /// What Stet recorded of each file when it made a snapshot, to compare a restore with.
    struct Manifest: Codable {
        struct File: Codable {
            var size: Int
            var modified: Double
            var sha256: String
        }
        var snapshot: String
        var files: [String: File]
    }

    /// `backup/NAME.json` and the others, for a policy name in form only.
    static func key(_ name: String) throws -> String { "backup/\(try StateKey.name(name)).json" }
    static func manifestKey(_ name: String) throws -> String { "backup/\(try StateKey.name(name)).manifest.json" }
    static func scratchKey(_ name: String) throws -> String { "backup/scratch-\(try StateKey.name(name))" }

    public func record(_ name: String) throws -> Record? {
        let key = try Self.key(name)
        guard let data = try store.read(key) else { return nil }
        let record: Record
        do { record = try JSONCoding.decoder.decode(Record.self, from: data) } catch {
            throw StateError.corrupt(key, "\(error)")
        }
        guard record.name == name else { throw StateError.corrupt(key, "it is the record of \(record.name), not of \(name)") }
        if let problem = Self.factsProblem(record) { throw StateError.corrupt(key, problem) }
        return record
    }

    func save(_ record: Record) throws { try store.write(Self.key(record.name), try JSONCoding.encoder.encode(record)) }

    /// Absolute repository location: a local path is resolved against the base directory;
    /// `sftp:`, `s3:`, `rest:` and other backends are left as they are.
    public func repository(_ policy: BackupPolicy) -> String { resolve(policy.resticRepository, backend: true) }

    public func passwordFile(_ policy: BackupPolicy) -> String { resolve(policy.passwordFile, backend: false) }

    /// Local paths come out absolute and clean (`filepath.Clean`), as restic names them: the
    /// files Stet lists for a snapshot then carry the names restic gives them.
    /// Looked at as bytes, as restic does: a `/` or `:` followed by a combining mark is still one.
    func resolve(_ path: String, backend: Bool) -> String {
        let bytes = path.utf8
        let slash = UInt8(ascii: "/")
        let absolute = bytes.first == slash
        if backend, !absolute, let colon = bytes.firstIndex(of: UInt8(ascii: ":")), !bytes[..<colon].contains(slash) { return path }
        return ResticExclude.clean(absolute ? path : baseDirectory + "/" + path)
    }

    // MARK: - Snapshot cache

    struct Cache: Codable {
        var at: Date
        var snapshots: [String: [ObservedBackup.Snapshot]]
        /// For a local repository: the names in its `snapshots/` folder (one file per snapshot).
        var files: [String]?
    }

    static let cacheFolder = "backup/cache"
    /// The key that names cache files: 32 random bytes, made once per state directory (0600).
    static let cacheNameKey = "backup/cache.key"

    /// One cache per repository and password: another password file is looked at afresh. The
    /// name is an HMAC-SHA256 under this state directory's secret key, so it says nothing about
    /// the password to whoever can list the folder (a plain hash of it could be checked against
    /// guesses offline).
    func cacheKey(_ repository: String, password: Data) throws -> String {
        let name = HMAC.sha256(key: try cacheNameSecret(), Data((repository + "\n").utf8) + SHA256.hash(password))
        return "\(Self.cacheFolder)/\(name.hexString).json"
    }

    /// The secret of `cacheNameKey`, made on first use. Made atomically (linked into place), so
    /// two processes that start together agree on one key.
    func cacheNameSecret() throws -> Data {
        if let existing = try store.read(Self.cacheNameKey) {
            guard existing.count == SHA256.byteCount else {
                throw StateError.corrupt(
                    "\(store.location)/\(Self.cacheNameKey)",
                    "expected \(SHA256.byteCount) bytes, found \(existing.count); remove it and Stet makes a new one")
            }
            return existing
        }
        if try store.create(Self.cacheNameKey, HMAC.randomKey()) {
            // Caches named under no key or another one are of no use now.
            for name in try store.list(Self.cacheFolder) where name.hasSuffix(".json") {
                try store.remove("\(Self.cacheFolder)/\(name)")
            }
        }
        return try cacheNameSecret()
    }

    func invalidate(_ policy: BackupPolicy) {
        guard let password = try? Restic.password(passwordFile(policy)) else { return }
        if let key = try? cacheKey(repository(policy), password: password) { try? store.remove(key) }
    }

    /// The snapshot files of a local repository, sorted; nil for other backends.
    func snapshotFiles(_ repository: String) -> [String]? {
        guard repository.hasPrefix("/") else { return nil }
        return ((try? FileManager.default.contentsOfDirectory(atPath: repository + "/snapshots")) ?? []).sorted()
    }

    /// Snapshots of every policy in `repository`, by policy name. From the cache while it is
    /// younger than `cacheLifetime` and, for a local repository, while the repository's
    /// snapshot files are the same ones (so changes made outside Stet are seen at once).
    func snapshots(_ repository: String, passwordFile: String, now: Date) throws -> [String: [ObservedBackup.Snapshot]] {
        let key = try cacheKey(repository, password: try Restic.password(passwordFile))
        let files = snapshotFiles(repository)
        if let data = try? store.read(key), let cache = try? JSONCoding.decoder.decode(Cache.self, from: data),
            now.timeIntervalSince(cache.at) < cacheLifetime, cache.files == files,
            files == nil || FileManager.default.fileExists(atPath: repository + "/config")
        {
            return cache.snapshots
        }
        var byPolicy: [String: [ObservedBackup.Snapshot]] = [:]
        for snapshot in try listSnapshots(repository, passwordFile: passwordFile, tag: nil) {
            for tag in snapshot.tags where tag.hasPrefix("stet:") {
                byPolicy[String(tag.dropFirst(5)), default: []].append(ObservedBackup.Snapshot(id: snapshot.id, time: snapshot.time))
            }
        }
        for name in byPolicy.keys { byPolicy[name]!.sort { $0.time < $1.time } }
        try store.write(key, try JSONCoding.encoder.encode(Cache(at: now, snapshots: byPolicy, files: files)))
        return byPolicy
    }

    package struct ListedSnapshot {
        package let id: String
        package let time: Date
        package let tags: [String]
        package let paths: [String]
        package let hostname: String?
    }

    /// Tags and paths of one listed snapshot, at most, and the bytes of each.
    static let listedNamesLimit = 4096
    static let listedNameBytes = 4096

    /// `restic snapshots --json` (only those tagged `tag`, when given), within the deadline for
    /// looking and `maximumListOutput`. Each snapshot is checked before use: a 64-digit
    /// hexadecimal id, an RFC 3339 time, bounded tags and paths; one out of form fails the list.
    func listSnapshots(_ repository: String, passwordFile: String, tag: String?) throws -> [ListedSnapshot] {
        let output = try restic.run(
            ["snapshots", "--json"] + (tag.map { ["--tag", $0] } ?? []), repository: repository, passwordFile: passwordFile,
            timeout: restic.deadlines.look, maximumOutput: Self.maximumListOutput)
        if let failure = Restic.failure(output, repository: repository) { throw failure }
        return try Self.snapshotList(output.stdout, repository: repository)
    }

    /// The snapshots in `restic snapshots --json` output `stdout`, each checked: a 64-digit
    /// hexadecimal id, an RFC 3339 time, bounded tags and paths; one out of form fails the list.
    package static func snapshotList(_ stdout: Data, repository: String) throws(Restic.Failure) -> [ListedSnapshot] {
        struct Listed: Decodable {
            let id: String
            let time: String
            let tags: [String]?
            let paths: [String]?
            let hostname: String?
        }
        func outOfForm(_ problem: String) -> Restic.Failure {
            Restic.Failure(kind: .failed, message: "restic listed a snapshot out of form in \(repository): \(problem)")
        }
        let listed: [Listed]
        do { listed = try JSONDecoder().decode([Listed]?.self, from: stdout) ?? [] } catch {
            throw Restic.Failure(kind: .failed, message: "restic's snapshot list of \(repository) is not the JSON expected: \(error)")
        }
        var snapshots: [ListedSnapshot] = []
        for snapshot in listed {
            guard snapshot.id.utf8.count == 64, Self.isSnapshotID(snapshot.id) else {
                throw outOfForm("id \(snapshot.id.prefix(80)) is not 64 hexadecimal digits")
            }
            guard let time = Restic.date(snapshot.time) else { throw outOfForm("snapshot \(snapshot.id): time \(snapshot.time.prefix(80)) is not RFC 3339") }
            let tags = snapshot.tags ?? []
            let paths = snapshot.paths ?? []
            for (field, names) in [("tags", tags), ("paths", paths)] {
                guard names.count <= Self.listedNamesLimit, names.allSatisfy({ $0.utf8.count <= Self.listedNameBytes }),
                    snapshot.hostname.map({ $0.utf8.count <= Self.listedNameBytes }) ?? true
                else {
                    throw outOfForm("snapshot \(snapshot.id): more than \(Self.listedNamesLimit) \(field) or one over \(Self.listedNameBytes) bytes")
                }
            }
            snapshots.append(ListedSnapshot(id: snapshot.id, time: time, tags: tags, paths: paths, hostname: snapshot.hostname))
        }
        return snapshots
    }

    /// Repositories looked at at once by `observe`.
    static let observeWidth = 8

    /// The snapshot lists of several repositories, each opened once, up to `observeWidth` at
    /// once: repositories that do not answer cost one deadline together, not one each.
    func snapshots(of sources: [Source], now: Date) -> [Source: Result<[String: [ObservedBackup.Snapshot]], any Error>] {
        let results = SourceResults()
        let width = DispatchSemaphore(value: Self.observeWidth)
        let group = DispatchGroup()
        for source in sources {
            width.wait()
            group.enter()
            DispatchQueue.global().async {
                defer {
                    width.signal()
                    group.leave()
                }
                results.set(source, Result { try self.snapshots(source.repository, passwordFile: source.passwordFile, now: now) })
            }
        }
        group.wait()
        return results.all
    }

    /// A repository as one password opens it.
    struct Source: Hashable, Sendable {
        let repository: String
        let passwordFile: String
    }

    // MARK: - Observe

    public func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState {
        var observed = ObservedState()
        var names = Set(desired.backupPolicies.keys)
        // Names Stet would not have written are not records, and are passed over.
        for file in try store.list("backup") where file.hasSuffix(".json") && !file.hasSuffix(".manifest.json") {
            let name = String(file.dropLast(5))
            if ResourceID.isValidName(name) { names.insert(name) }
        }
        let sources = Set(desired.backupPolicies.values.map { Source(repository: repository($0), passwordFile: passwordFile($0)) })
        let lists = snapshots(of: sources.sorted { ($0.repository, $0.passwordFile) < ($1.repository, $1.passwordFile) }, now: now)
        for name in names.sorted() {
            let record = try record(name)
            guard let policy = desired.backupPolicies[name] else {
                // Removed from the release: reported from the record alone, no repository opened.
                if let record {
                    observed.backups[name] = ObservedBackup(
                        name: name, repository: .ready, snapshots: [], known: record.known, lastBackup: record.lastBackup,
                        lastForget: record.lastForget, lastCheck: record.lastCheck, lastRestoreTest: record.lastRestoreTest,
                        protect: record.protect)
                }
                continue
            }
            var state = ObservedBackup.Repository.ready
            var snapshots: [ObservedBackup.Snapshot] = []
            switch lists[Source(repository: repository(policy), passwordFile: passwordFile(policy))] {
            case .success(let byPolicy): snapshots = byPolicy[name] ?? []
            case .failure(let failure as Restic.Failure):
                switch failure.kind {
                case .missingRepository: state = .missing
                case .failed: state = .unreadable(Self.doesNotOpen(failure.message, repository: repository(policy), interrupted: interruptedInit(name, repository: repository(policy))))
                default: state = .unreadable(failure.message)
                }
            case .failure(let error): throw error
            case nil: state = .unreadable("not looked at")
            }
            observed.backups[name] = ObservedBackup(
                name: name, repository: state, snapshots: snapshots, known: record?.known ?? false, lastBackup: record?.lastBackup,
                lastForget: record?.lastForget, lastCheck: record?.lastCheck, lastRestoreTest: record?.lastRestoreTest,
                protect: record?.protect ?? policy.protect)
        }
        return observed
    }

    // MARK: - Perform

    /// A failure names the policy (`ActionOutcome.naming`).
    public func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        await performing(change, desired: desired).naming(change)
    }

    private func performing(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        guard case .backup(let action) = change.action else { return .failed("not a backup change") }
        let name = change.resource.name
        do {
            if action == .removeState {
                try store.remove(Self.key(name))
                try store.remove(Self.manifestKey(name))
                try store.remove(Self.initKey(name))
                return .done("forgot Stet's state for \(name); the repository and its snapshots are kept")
            }
            guard let policy = desired.backupPolicies[name] else { return .failed("not in the release") }
            var record = try record(name) ?? Record(name: name, repository: repository(policy))
            record.repository = repository(policy)
            record.protect = policy.protect
            defer { try? save(record) }
            switch action {
            case .initRepository: return try initialise(policy, &record)
            case .backup: return try backup(policy, &record)
            case .forget: return try forget(policy, &record)
            case .check: return try check(policy, &record)
            case .restoreTest: return try restoreTest(policy, &record)
            case .removeState: return .failed("unknown action \(change.action)")
            }
        } catch let failure as Restic.Failure {
            return .failed(failure.message)
        } catch {
            return .failed("\(error)")
        }
    }

    /// Repositories being initialised by this process (the state lock keeps other processes
    /// out). Two policies of one new repository both plan `init-repository`, and the applier
    /// runs them at once: two `restic init` racing fail one policy's backup, or leave a key
    /// that does not open the config. The second one waits, then finds the repository made.
    private static let initialising = RepositoryLocks()

    func initialise(_ policy: BackupPolicy, _ record: inout Record) throws -> ActionOutcome {
        let repository = repository(policy)
        defer { invalidate(policy) }
        return try Self.initialising.with(repository) { try initialiseAlone(policy, repository, &record) }
    }

    private func initialiseAlone(_ policy: BackupPolicy, _ repository: String, _ record: inout Record) throws -> ActionOutcome {
        let name = policy.metadata.name
        if let opened = try opens(policy, repository, &record) { return opened }
        let earlier = marker(name)
        // Written before `restic init` starts, removed once the repository opens: a repository
        // that does not open while this is here was left by an init that was cut short.
        var marker = InitMarker(repository: repository, started: RFC3339.format(Date()), staging: nil)
        let staging = repository.hasPrefix("/") ? try stagingPath(repository) : nil
        marker.staging = staging.map { URL(fileURLWithPath: $0).lastPathComponent }
        try store.write(Self.initKey(name), try JSONCoding.encoder.encode(marker))
        if let staging {
            if let problem = try initialiseStaged(policy, at: repository, staging: staging, earlier: earlier?.staging) {
                // Another process may have put a repository there meanwhile.
                if let opened = try opens(policy, repository, &record) { return opened }
                return .failed(problem)
            }
        } else {
            let output = try restic.run(["init"], repository: repository, passwordFile: passwordFile(policy), timeout: restic.deadlines.look)
            if let failure = Restic.failure(output, repository: repository) { throw failure }
        }
        try store.remove(Self.initKey(name))
        record.known = true
        return .done("initialised \(repository)")
    }

    /// nil when the repository is missing (so init may go ahead); otherwise the outcome: done
    /// when it opens (and any init marker is cleared), failed when it is there but does not open.
    private func opens(_ policy: BackupPolicy, _ repository: String, _ record: inout Record) throws -> ActionOutcome? {
        let name = policy.metadata.name
        let probe = try restic.run(["cat", "config"], repository: repository, passwordFile: passwordFile(policy), timeout: restic.deadlines.look)
        guard let failure = Restic.failure(probe, repository: repository) else {
            try? store.remove(Self.initKey(name))
            record.known = true
            return .done("\(repository) is initialised already")
        }
        guard failure.kind == .missingRepository else {
            // There but not opening: never initialise over it.
            guard failure.kind == .failed else { return .failed(failure.message) }
            return .failed(Self.doesNotOpen(failure.message, repository: repository, interrupted: interruptedInit(name, repository: repository)))
        }
        return nil
    }

    /// What to say of a repository that is there but does not open (not a wrong password, not a
    /// lock): Stet leaves it alone, and says what the operator may do.
    static func doesNotOpen(_ message: String, repository: String, interrupted started: String?) -> String {
        let cut = started.map { "Stet's `restic init` of it started \($0) and did not finish, so it may hold no backup. " } ?? ""
        return "\(message). \(cut)Stet never initialises over an existing repository: check it with `restic -r \(repository) snapshots`; "
            + "if it is what an interrupted init left and lists no snapshot, remove it and apply again"
    }

    /// The state key of policy `name`'s init marker.
    static func initKey(_ name: String) throws -> String { "backup/\(try StateKey.name(name)).init.json" }

    struct InitMarker: Codable {
        let repository: String
        let started: String
        /// The folder a local repository was being made in, beside its path.
        var staging: String?
    }

    /// When an init of `repository` for policy `name` started and did not finish, if one did.
    func interruptedInit(_ name: String, repository: String) -> String? {
        marker(name).flatMap { $0.repository == repository ? $0.started : nil }
    }

    func marker(_ name: String) -> InitMarker? {
        guard let data = try? store.read(Self.initKey(name)), data.count <= 4096 else { return nil }
        return try? JSONDecoder().decode(InitMarker.self, from: data)
    }

    /// Where a new local repository at `path` is made before it is renamed into place, or nil
    /// when it is made in place: when the path exists already (an empty folder, a mount point:
    /// restic writes `config` last, so an init cut short there is made again by the next), or
    /// when others may write the parent folder (where a folder of Stet's could be tampered with).
    func stagingPath(_ path: String) throws -> String? {
        let final = URL(fileURLWithPath: path)
        guard final.lastPathComponent != "/", final.path != "/" else { return nil }
        var info = stat()
        guard lstat(path, &info) != 0, errno == ENOENT else { return nil }
        let parent = final.deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            return nil
        }
        guard lstat(parent, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_mode & 0o022 == 0,
            info.st_uid == geteuid() || info.st_uid == 0
        else { return nil }
        return parent + "/." + final.lastPathComponent + ".stet-init-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
    }

    /// A local repository made at `staging` beside `path`, fsynced, and renamed into place, so
    /// the path holds a whole repository or none: `restic init` cut short (Stet killed, the host
    /// down) leaves a folder beside it that never becomes the repository, and that the next init
    /// removes (`marker.staging`). Returns why it could not be made, nil when it was.
    func initialiseStaged(_ policy: BackupPolicy, at path: String, staging: String, earlier: String?) throws -> String? {
        let parent = URL(fileURLWithPath: staging).deletingLastPathComponent().path
        if let earlier, earlier != URL(fileURLWithPath: staging).lastPathComponent,
            earlier.hasPrefix("." + URL(fileURLWithPath: path).lastPathComponent + ".stet-init-"), !earlier.contains("/")
        {
            Self.removeOwnFolder(parent + "/" + earlier)
        }
        defer { Self.removeOwnFolder(staging) }
        let output = try restic.run(["init"], repository: staging, passwordFile: passwordFile(policy), timeout: restic.deadlines.look)
        if let failure = Restic.failure(output, repository: path) { throw failure }
        if let problem = Self.syncTree(staging) { return "cannot write the new repository to disk: \(problem)" }
        guard rename(staging, path) == 0 else {
            let code = errno
            if code == ENOTEMPTY || code == EEXIST {
                return "\(path) appeared while Stet made the repository, and restic does not open it: look at what it holds"
            }
            return "cannot move the new repository into \(path): \(String(cString: strerror(code)))"
        }
        do {
            try AtomicFile.syncDirectory(parent)
        } catch {
            return "cannot write \(parent) to disk: \(error)"
        }
        return nil
    }

    /// Removes a folder Stet made (a staging repository), only when it is a folder owned by this
    /// user and not a link.
    static func removeOwnFolder(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == geteuid() else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// fsync of every file and folder under `root` (a new repository: about 270 entries, most
    /// of them empty folders), or what failed.
    static func syncTree(_ root: String) -> String? {
        var paths = [root]
        if let walker = FileManager.default.enumerator(atPath: root) {
            for case let relative as String in walker { paths.append(root + "/" + relative) }
        }
        for path in paths.reversed() {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else { return "open \(path): \(String(cString: strerror(errno)))" }
            defer { close(fd) }
            guard fsync(fd) == 0 else { return "fsync \(path): \(String(cString: strerror(errno)))" }
        }
        return nil
    }

    func backup(_ policy: BackupPolicy, _ record: inout Record) throws -> ActionOutcome {
        let repository = repository(policy)
        defer { invalidate(policy) }
        let paths = policy.paths.map { resolve($0, backend: false) }
        // Stet's manifest (size, time, SHA-256 of each file) is made while restic reads the
        // same files, so it costs little beyond the backup itself.
        let manifestBox = ManifestBox()
        // On a thread of its own at the lowest priority, so restic is never slowed by it.
        let done = DispatchSemaphore(value: 0)
        let hasher = Thread {
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
            manifestBox.files = Self.manifest(of: paths, excluding: policy.exclude)
            done.signal()
        }
        hasher.start()
        var arguments = ["backup", "--json", "--tag", "stet:\(policy.metadata.name)"]
        for pattern in policy.exclude { arguments += ["--exclude", pattern] }
        // Status lines are reported as they stream (percent, files, bytes) and dropped.
        var stream = BackupOutput()
        let output = try restic.run(
            arguments + paths, repository: repository, passwordFile: passwordFile(policy), timeout: restic.deadlines.transfer
        ) { stream.consume($0) }
        stream.finish()
        done.wait()
        let manifest = manifestBox.files
        if let failure = Restic.failure(output, repository: repository, allowed: [3]) { throw failure }
        let summary = stream.summary.flatMap(Self.backupSummary)
        guard let summary, let short = summary.snapshot_id else {
            return .failed("restic made no snapshot: \(output.stderr.split(separator: "\n").last ?? "")")
        }
        record.known = true
        try? store.remove(Self.initKey(policy.metadata.name))
        record.lastBackup = Date()
        record.lastSnapshot = short
        Self.note(short, in: &record) {
            $0.files = summary.total_files_processed
            $0.bytes = summary.total_bytes_processed
        }
        record.lastWarning = output.status == 3
            ? "some files could not be read: " + output.stderr.split(separator: "\n").prefix(3).joined(separator: "; ") : nil
        try store.write(Self.manifestKey(policy.metadata.name), try JSONCoding.encoder.encode(Manifest(snapshot: short, files: manifest)))
        let detail = "snapshot \(short): \(summary.total_files_processed ?? 0) files, \(summary.total_bytes_processed ?? 0) bytes, "
            + "\(summary.data_added ?? 0) bytes added"
        return .done(record.lastWarning.map { detail + "; warning: \($0)" } ?? detail)
    }

    /// The `summary` message of `restic backup --json`, or nil when it is not one.
    package static func backupSummary(_ message: Data) -> Summary? {
        guard let summary = try? JSONDecoder().decode(Summary.self, from: message), summary.message_type == "summary" else { return nil }
        return summary
    }

    package struct Summary: Decodable {
        let message_type: String
        let snapshot_id: String?
        let total_files_processed: Int?
        let total_bytes_processed: Int?
        let data_added: Int?
    }

    /// Snapshots kept and removed, from the JSON line `restic forget --json` prints first;
    /// zero of each when it printed none.
    package static func forgetCounts(_ stdout: Data) -> (kept: Int, removed: Int) {
        struct Group: Decodable {
            struct Item: Decodable { let id: String }
            let keep: [Item]?
            let remove: [Item]?
        }
        let line = stdout.split(separator: 0x0A).first.map { Data($0) } ?? Data()
        let groups: [Group] = ((try? JSONDecoder().decode([Group]?.self, from: line)) ?? nil) ?? []
        return (groups.reduce(0) { $0 + ($1.keep?.count ?? 0) }, groups.reduce(0) { $0 + ($1.remove?.count ?? 0) })
    }

    func forget(_ policy: BackupPolicy, _ record: inout Record) throws -> ActionOutcome {
        let repository = repository(policy)
        defer { invalidate(policy) }
        let retention = policy.retention
        var arguments = ["forget", "--json", "--tag", "stet:\(policy.metadata.name)", "--group-by", "tags"]
        for (flag, value) in [("--keep-last", retention.last), ("--keep-hourly", retention.hourly), ("--keep-daily", retention.daily),
                              ("--keep-weekly", retention.weekly), ("--keep-monthly", retention.monthly)]
        {
            if let value { arguments += [flag, String(value)] }
        }
        guard arguments.count > 6 else { return .done("no retention rules") }
        let output = try restic.run(
            arguments + ["--prune"], repository: repository, passwordFile: passwordFile(policy), timeout: restic.deadlines.verify)
        if let failure = Restic.failure(output, repository: repository) { throw failure }
        // `forget --prune` prints prune's text after the JSON line.
        let (kept, removed) = Self.forgetCounts(output.stdout)
        record.lastForget = Date()
        return .done("kept \(kept) snapshots, removed \(removed), pruned")
    }

    func check(_ policy: BackupPolicy, _ record: inout Record) throws -> ActionOutcome {
        let repository = repository(policy)
        // The index only ever counts round the subsets, so no number in the record can grow
        // without bound (or arrive negative) and trap.
        let subsets = max(1, checkSubsets)
        let index = (record.checkIndex % subsets + subsets) % subsets
        let subset = "\(index + 1)/\(subsets)"
        let output = try restic.run(
            ["check", "--read-data-subset", subset], repository: repository, passwordFile: passwordFile(policy), timeout: restic.deadlines.verify)
        record.checkIndex = (index + 1) % subsets
        if let failure = Restic.failure(output, repository: repository) {
            let detail = failure.kind == .failed ? Self.checkErrors(output.stderr + String(decoding: output.stdout, as: UTF8.self)) : failure.message
            record.lastCheck = ObservedBackup.Verification(at: Date(), ok: false, detail: "check of data subset \(subset) failed: \(detail)")
            return .failed(record.lastCheck!.detail)
        }
        record.lastCheck = ObservedBackup.Verification(at: Date(), ok: true, detail: "data subset \(subset) read and verified")
        return .done(record.lastCheck!.detail)
    }

    /// The first lines of restic's complaint, for the audit log and `status`.
    package static func checkErrors(_ text: String) -> String {
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("using temporary cache") && !$0.hasPrefix("created new cache") && !$0.hasPrefix("read ") }
        let interesting = lines.filter { $0.localizedCaseInsensitiveContains("error") || $0.localizedCaseInsensitiveContains("fail") || $0.contains("Fatal") }
        return (interesting.isEmpty ? lines : interesting).prefix(3).joined(separator: "; ")
    }

    func restoreTest(_ policy: BackupPolicy, _ record: inout Record) throws -> ActionOutcome {
        let repository = repository(policy)
        let name = policy.metadata.name
        // restic writes the restored files by path: a folder on this host's disk.
        let absoluteScratch = try store.localPath(Self.scratchKey(name))
        try? FileManager.default.removeItem(atPath: absoluteScratch)
        defer { try? FileManager.default.removeItem(atPath: absoluteScratch) }
        var restored = "latest"
        func fail(_ detail: String) -> ActionOutcome {
            let test = ObservedBackup.Verification(at: Date(), ok: false, detail: "snapshot \(restored): \(detail)")
            record.lastRestoreTest = test
            Self.note(restored, in: &record) { $0.restoreTest = test }
            return .failed("restore test failed: " + test.detail)
        }
        // restic checks every restored file against the repository's content hashes (--verify).
        let output = try restic.run(
            ["restore", "latest", "--tag", "stet:\(name)", "--target", absoluteScratch, "--verify"], repository: repository,
            passwordFile: passwordFile(policy), timeout: restic.deadlines.transfer)
        let text = String(decoding: output.stdout, as: UTF8.self)
        if let range = text.range(of: "<Snapshot ") { restored = String(text[range.upperBound...].prefix { $0 != " " }) }
        if let failure = Restic.failure(output, repository: repository) {
            return fail(failure.kind == .failed ? Self.checkErrors(output.stderr + text) : failure.message)
        }
        // Stet's own comparison with what it recorded when it made the snapshot.
        var compared = 0
        if let data = try store.read(Self.manifestKey(name)), let manifest = try? JSONCoding.decoder.decode(Manifest.self, from: data),
            restored.hasPrefix(manifest.snapshot) || manifest.snapshot.hasPrefix(restored)
        {
            let entries = manifest.files.sorted { $0.key < $1.key }
            let problems = ProblemList()
            DispatchQueue.concurrentPerform(iterations: entries.count) { index in
                let (path, file) = entries[index]
                guard let copy = Self.digest(ofFileAt: absoluteScratch + path) else {
                    problems.add(index, "\(path) is missing from the restore")
                    return
                }
                if abs(copy.modified - file.modified) > 0.001 {
                    // Changed while the backup read it: restic's --verify vouches for this one.
                } else if copy.size != file.size {
                    problems.add(index, "\(path) restored with \(copy.size) bytes, \(file.size) were backed up")
                } else if copy.sha256 != file.sha256 {
                    problems.add(index, "\(path) restored with other content than was backed up")
                }
            }
            if let first = problems.first { return fail(first) }
            compared = entries.count
        }
        let test = ObservedBackup.Verification(
            at: Date(), ok: true,
            detail: "snapshot \(restored) restored and verified" + (compared > 0 ? "; \(compared) files match their SHA-256 at backup" : ""))
        record.lastRestoreTest = test
        Self.note(restored, in: &record) { $0.restoreTest = test }
        return .done(test.detail)
    }

    /// Size, modification time and SHA-256 of every regular file restic backs up from `paths`
    /// (absolute and clean): restic's walk (an excluded directory is not entered, links are not
    /// followed) with restic's meaning of the exclude patterns (`ResticExclude`), so the list
    /// holds exactly the files the snapshot holds.
    static func manifest(of paths: [String], excluding patterns: [String]) -> [String: Manifest.File] {
        let exclude = ResticExclude(patterns)
        var files: [String: Manifest.File] = [:]
        func add(_ path: String) {
            guard !exclude.excludes(path) else { return }
            var info = stat()
            guard lstat(path, &info) == 0 else { return }
            if (info.st_mode & S_IFMT) == S_IFDIR {
                for child in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                    add(path == "/" ? "/" + child : path + "/" + child)
                }
            } else if (info.st_mode & S_IFMT) == S_IFREG, let file = digest(ofFileAt: path) {
                files[path] = file
            }
        }
        for path in paths { add(path) }
        return files
    }

    /// Size, modification time and SHA-256 of the regular file at `path`, all through one
    /// descriptor opened without following a link or waiting: a link or a FIFO put in the
    /// file's place meanwhile is passed over, never followed or waited on.
    static func digest(ofFileAt path: String) -> Manifest.File? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        let hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = read(fd, buffer.baseAddress, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return Manifest.File(
            size: Int(info.st_size), modified: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9,
            sha256: hasher.finalize().hexString)
    }

    // MARK: - Restore

    /// A snapshot name `stet restore` takes: `latest`, or a snapshot id or a prefix of one.
    public static func isSnapshotName(_ name: String) -> Bool {
        name == "latest" || ((1...64).contains(name.utf8.count) && name.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
    }

    /// A snapshot that is not one of the policy's, or not there at all.
    public struct SnapshotRefused: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The snapshot `name` (`latest`, an id or a prefix of one) among the snapshots tagged for
    /// `policy`, read from the repository now. Another policy's snapshot is refused, so a restore
    /// never takes other data than the policy's and records it under the policy.
    public func snapshot(_ policy: BackupPolicy, named name: String) throws -> ObservedBackup.Snapshot {
        guard Self.isSnapshotName(name) else {
            throw SnapshotRefused(description: "\(name) is not a snapshot name: expected latest or a snapshot id (hexadecimal)")
        }
        let tag = "stet:\(policy.metadata.name)"
        let listed = try listSnapshots(repository(policy), passwordFile: passwordFile(policy), tag: tag)
            .filter { $0.tags.contains(tag) }
        if name == "latest" {
            guard let newest = listed.max(by: { $0.time < $1.time }) else {
                throw SnapshotRefused(description: "\(policy.metadata.name) has no snapshot in \(repository(policy))")
            }
            return ObservedBackup.Snapshot(id: newest.id, time: newest.time)
        }
        let matching = listed.filter { $0.id.hasPrefix(name) }
        guard let found = matching.first else {
            throw SnapshotRefused(
                description: "snapshot \(name) is not a snapshot of \(policy.metadata.name) (none tagged \(tag) has that id); "
                    + "a policy restores only its own snapshots")
        }
        guard matching.count == 1 else {
            throw SnapshotRefused(description: "snapshot \(name) is ambiguous: \(matching.prefix(3).map(\.id).joined(separator: ", ")) …")
        }
        return ObservedBackup.Snapshot(id: found.id, time: found.time)
    }

    /// What `stet restore` restored: files and bytes (counted by Stet before they were put in
    /// place), and what restic verified.
    public struct RestoreSummary: Sendable, CustomStringConvertible {
        public let snapshot: ObservedBackup.Snapshot
        public let target: String
        public let placed: RestoreTarget.Summary
        /// Files restic read back and compared with the repository's content hashes (`--verify`),
        /// as it reported them; nil when its output did not say.
        public let verifiedFiles: Int?

        public var description: String {
            "\(placed.files) files, \(ByteCount.text(placed.bytes)) (\(placed.bytes) bytes) of snapshot \(snapshot.id.prefix(8)) "
                + "of \(RFC3339.format(snapshot.time)) into \(target); verified: "
                + (verifiedFiles.map { "restic read back \($0) files and every byte matches the repository" }
                    ?? "restic read back the restored files and every byte matches the repository")
        }
    }

    /// Restores `snapshot` (found by `snapshot(_:named:)`) into `target`, optionally only the
    /// `include` paths. restic writes into a fresh directory and Stet moves the result into
    /// place (`RestoreTarget`), so no link in the target is ever followed.
    public func restore(
        _ policy: BackupPolicy, snapshot: ObservedBackup.Snapshot, into target: RestoreTarget, include: [String]
    ) throws -> RestoreSummary {
        let repository = repository(policy)
        var arguments = ["restore", snapshot.id, "--verify"]
        for path in include { arguments += ["--include", path] }
        var verified: Int?
        let placed = try target.restore { staging in
            let output = try restic.run(
                arguments + ["--target", staging], repository: repository, passwordFile: passwordFile(policy),
                timeout: restic.deadlines.transfer, maximumOutput: 4 << 20)
            if let failure = Restic.failure(output, repository: repository) { throw failure }
            verified = Self.verifiedFiles(String(decoding: output.stdout, as: UTF8.self))
        }
        return RestoreSummary(snapshot: snapshot, target: target.path, placed: placed, verifiedFiles: verified)
    }

    /// The count in restic's `finished verifying N files in …` (restic 0.14 `restore --verify`).
    package static func verifiedFiles(_ text: String) -> Int? {
        for line in text.split(separator: "\n") {
            let words = line.lowercased().split(separator: " ")
            if let at = words.firstIndex(of: "verifying"), at > 0, words[at - 1] == "finished", at + 2 < words.count, words[at + 2] == "files",
                let count = Int(words[at + 1]), count >= 0
            {
                return count
            }
        }
        return nil
    }
}

/// One lock per repository, made on first use.
private final class RepositoryLocks: @unchecked Sendable {
    private let mutex = NSLock()
    private var locks: [String: NSLock] = [:]

    func with<T>(_ repository: String, _ body: () throws -> T) rethrows -> T {
        let lock = mutex.withLock {
            if let lock = locks[repository] { return lock }
            let lock = NSLock()
            locks[repository] = lock
            return lock
        }
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}

private final class SourceResults: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [BackupProvider.Source: Result<[String: [ObservedBackup.Snapshot]], any Error>] = [:]
    func set(_ source: BackupProvider.Source, _ result: Result<[String: [ObservedBackup.Snapshot]], any Error>) {
        lock.withLock { results[source] = result }
    }
    var all: [BackupProvider.Source: Result<[String: [ObservedBackup.Snapshot]], any Error>] { lock.withLock { results } }
}

private final class ManifestBox: @unchecked Sendable {
    var files: [String: BackupProvider.Manifest.File] = [:]
}

/// Problems found by concurrent comparisons; the first by index wins.
private final class ProblemList: @unchecked Sendable {
    private var found: [Int: String] = [:]
    private let lock = NSLock()
    func add(_ index: Int, _ problem: String) { lock.withLock { found[index] = problem } }
    var first: String? { lock.withLock { found.min { $0.key < $1.key }?.value } }
}
