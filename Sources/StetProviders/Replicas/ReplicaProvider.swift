import CSys
public import Foundation
public import StetCore
import StetCrypto
public import StetState

/// Redundancy on the local host: replica *i* of a service is a real process in its own session
/// (it outlives the command that started it), recorded in `STATE/replicas/SERVICE/INDEX.json`
/// with its pid **and** start time, so a reused pid is never taken for a replica.
public struct ReplicaProvider: Provider {
    public let store: any StateStore
    /// Relative `workingDir`s are resolved against this (the repository root).
    public let baseDirectory: String
    /// The environment replicas inherit (PATH, HOME, LANG), before the manifest's `env`.
    public let baseEnvironment: [String: String]
    public var logLimit = 10 << 20
    /// Run each due health check while observing (plan, apply, status). The reconcile loop
    /// checks on its own schedule and turns this off: health then comes from the record.
    public var checkHealth = true
    /// How long `start` watches a new replica before calling the start done: a replica that
    /// fails at once (a typo, a port in use) then fails the action. The reconcile loop sets 0:
    /// it watches every replica's exit anyway, and must not be busy when one ends.
    public var startCheck = 0.15
    public let checks = CheckRunner()
    /// Told each replica process started (service, index, pid), right after the spawn.
    public var spawned: @Sendable (String, Int, Int32) -> Void = { _, _, _ in }
    /// Records as last decoded, by the bytes they were decoded from: a record read again
    /// unchanged (every pass reads every record) is not decoded again.
    let decoded = DecodedRecords()
    /// Exits found by the loop and not saved yet (`noteExit`, `saveExits`).
    let exits = PendingExits()
    /// Records and their folders as read in the loop's current pass (`beginPass`).
    let pass = PassRecords()

    public init(store: any StateStore, baseDirectory: String = FileManager.default.currentDirectoryPath,
                environment: [String: String] = ProcessInfo.processInfo.environment)
    {
        self.store = store
        self.baseDirectory = baseDirectory
        baseEnvironment = environment.filter { ["PATH", "HOME", "LANG", "LC_ALL", "TZ"].contains($0.key) }
    }

    // MARK: - Records

    /// What Stet keeps about one replica.
    public struct Record: Codable, Sendable, Equatable {
        public var service: String
        public var index: Int
        public var pid: Int32
        public var startTime: UInt64
        public var specHash: String
        public var port: Int?
        public var startedAt: Date
        public var restarts: Int
        public var lastExit: String?
        /// When the process was seen gone (set once, by whoever saw it first and could write).
        public var exitedAt: Date?
        public var protect: Bool
        /// `STET_INSTANCE` of the process: finds it when Stet stopped between spawning it and
        /// recording its pid (then `pid` is 0).
        public var instance: String?
        /// How to stop it, as its spec said when it started (for stops after the service left
        /// the release).
        public var stopSignal: String?
        public var stopTimeout: Double?
        /// Consecutive failed health checks, and when the last check ran.
        public var healthFailures: Int
        public var lastCheck: Date?
    }

    /// `replicas/SERVICE/INDEX.json`, for a service name in form and an index in range only.
    static func key(_ service: String, _ index: Int) throws -> String {
        "replicas/\(try StateKey.name(service))/\(try StateKey.index(index)).json"
    }

    /// The largest count a record holds (restarts, failed checks): 2^53, which every JSON reader
    /// reads exactly and which no count reaches, so adding one never overflows.
    public static let maximumCount = 1 << 53

    /// What makes a record read back unusable, or nil: it must be the record of the key it was
    /// read from, and every number in it one Stet could have written.
    static func problem(_ record: Record, service: String, index: Int) -> String? {
        if record.service != service || record.index != index {
            return "it is the record of replica \(record.index) of \(record.service), not of replica \(index) of \(service)"
        }
        if record.pid < 0 { return "pid \(record.pid) is negative" }
        if record.pid == 1 { return "pid 1 is the init process, never a replica" }
        if let port = record.port, !(1...65535).contains(port) { return "port \(port) is not from 1 to 65535" }
        if !(0...maximumCount).contains(record.restarts) { return "restarts \(record.restarts) is not from 0 to \(maximumCount)" }
        if !(0...maximumCount).contains(record.healthFailures) {
            return "healthFailures \(record.healthFailures) is not from 0 to \(maximumCount)"
        }
        if let timeout = record.stopTimeout, !(timeout >= 0) { return "stopTimeout \(timeout) is negative" }
        return nil
    }

    /// The record of replica `index`. A record left pending (pid 0) by a start that was cut
    /// short comes back with the pid of the process that carries its instance, if any runs.
    public func record(_ service: String, _ index: Int) throws -> Record? {
        guard var record = try stored(service, index) else { return nil }
        if let exit = exits.exit(of: record) {
            record.lastExit = exit.lastExit
            record.exitedAt = exit.exitedAt
        }
        // Releases before timeouts had a bound may have recorded a longer one: stops wait a day at most.
        record.stopTimeout = record.stopTimeout.map { min($0, StetDuration.maximumTimeout.seconds) }
        if record.pid == 0, let instance = record.instance {
            if let found = ProcessTable.find(instance: instance) {
                record.pid = found.pid
                record.startTime = found.entry.startTime
            } else {
                record.lastExit = record.lastExit ?? "never came up (Stet stopped while starting it)"
            }
        }
        return record
    }

    /// The record as the state directory holds it, checked (`problem`): as the loop's passes
    /// last read or wrote it while nobody else could change it (`PassRecords`), else read, and
    /// decoded only when its bytes changed since the last read (`DecodedRecords`).
    private func stored(_ service: String, _ index: Int) throws -> Record? {
        let key = try Self.key(service, index)
        // The count and the stamp are taken before the read: a change in between moves one of them.
        let changes = store.changes(under: Self.folder)
        let found = pass.record(key, changes: changes, stamp: store.stamp)
        if let known = found.kept { return known }
        let stamp = store.stamp(key)
        let record = try read(key, service, index)
        pass.keep(record, key, changes: changes, stamp: stamp, readIn: found.pass)
        return record
    }

    /// The top-level folder of the records.
    static let folder = "replicas"

    private func read(_ key: String, _ service: String, _ index: Int) throws -> Record? {
        guard let data = try store.read(key) else { return nil }
        // Stet writes no empty record: an empty file is a pending record a power loss cut
        // short (`start`), and the process it was for ended with the host.
        if data.isEmpty { return nil }
        if let known = decoded.record(key, data) { return known }
        let record: Record
        do {
            record = try JSONCoding.decoder.decode(Record.self, from: data)
        } catch {
            throw StateError.corrupt(key, "\(error)")
        }
        if let problem = Self.problem(record, service: service, index: index) { throw StateError.corrupt(key, problem) }
        decoded.keep(record, key, data)
        return record
    }

    public func save(_ record: Record) throws { try write(record, by: store.write) }

    /// Saves `record` whole, without waiting for its folder (`StateStore.replace`).
    private func replace(_ record: Record) throws { try write(record, by: store.replace) }

    /// Writes `record` under its key with `write` (a `StateStore` write, replace or stage). The
    /// passes keep what was written, as any reader would decode it (`PassRecords.wrote`).
    private func write(_ record: Record, by write: (String, Data) throws -> Void) throws {
        let key = try Self.key(record.service, record.index)
        let data = try JSONCoding.encoder.encode(record)
        let before = store.changes(under: Self.folder)
        let folderBefore = store.stamp(StateKey.folder(of: key))
        let writtenIn = pass.number
        try write(key, data)
        // What this process wrote reads back without decoding it again: the next pass reads
        // the record a replica's death has to be found in (a health check saves it between).
        var kept: Record?
        if let stored = record.asStored, Self.problem(stored, service: record.service, index: record.index) == nil {
            decoded.keep(stored, key, data)
            kept = stored
        }
        pass.wrote(
            key, kept, before: before, after: store.changes(under: Self.folder), folderBefore: folderBefore, writtenIn: writtenIn,
            stamp: store.stamp)
    }

    /// The loop's pass begins, under the state lock (`tenure`, `Lock.tenure`; nil when it cannot
    /// tell): until `endPass`, records and folders are read from disk only when this process
    /// changed them through another provider or around providers (`StateStore.changes`), or
    /// when another holder of the lock came between this pass and the passes that read them
    /// (`PassRecords`). The pass reads them to find exits, then to observe, and the loop's
    /// watchers once more after it; a kept file or folder costs one `lstat` in a pass, its first
    /// use, and nothing after.
    public func beginPass(tenure: UInt64? = nil, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        pass.begin(tenure: tenure, changes: store.changes(under: Self.folder), now: now)
    }

    /// The pass ends: records are read from disk again each time, until the next pass.
    public func endPass() { pass.end() }

    /// Keeps how a replica ended without writing it yet: records read from now on say so, and
    /// a replacement's record carries it. `saveExits` writes what no replacement took over. Used
    /// by the loop, between a replica's exit and its replacement: a crash meanwhile loses only
    /// the wording of the exit; the record still names a process that is gone, found again.
    public func noteExit(_ record: Record) {
        exits.note(record)
    }

    /// Writes the exits kept by `noteExit` whose records still name the process that ended
    /// (a replacement's record already carries its exit), without waiting for the folder
    /// (`StateStore.replace`).
    public func saveExits() throws {
        for exit in exits.take() {
            // A record that is gone or does not read is left to the pass that reads it next.
            guard var record = try? stored(exit.service, exit.index), record.pid == exit.pid, record.startTime == exit.startTime,
                record.instance == exit.instance, record.exitedAt == nil
            else { continue }
            record.lastExit = exit.lastExit
            record.exitedAt = exit.exitedAt
            try replace(record)
        }
    }

    func remove(_ service: String, _ index: Int) throws {
        let key = try Self.key(service, index)
        let before = store.changes(under: Self.folder)
        try store.remove(key)
        pass.removed(key, before: before, after: store.changes(under: Self.folder))
    }

    /// Every service with records, and its records by index. Names in the folder that Stet
    /// would not have written (a service name out of form, an index other than `0`, `1` …) are
    /// not records and are passed over.
    public func records() throws -> [String: [Int: Record]] { try records(only: nil) }

    /// The records of `services` only (of every service when nil).
    func records(only services: Set<String>?) throws -> [String: [Int: Record]] {
        var result: [String: [Int: Record]] = [:]
        for service in try list("replicas") where ResourceID.isValidName(service) && services?.contains(service) ?? true {
            for file in try list("replicas/\(service)") where file.hasSuffix(".json") {
                guard let index = StateKey.index(parsing: file.dropLast(5)), let record = try record(service, index) else { continue }
                result[service, default: [:]][index] = record
            }
        }
        return result
    }

    /// Removes what writers that have ended left under temporary names in the folders of the
    /// replica records (`StateStore.removeLeftovers`). Call under the state lock.
    public static func removeLeftovers(in store: any StateStore) throws {
        for service in try store.list("replicas") where ResourceID.isValidName(service) {
            try store.removeLeftovers(in: "replicas/\(service)")
        }
    }

    private func list(_ folder: String) throws -> [String] {
        let changes = store.changes(under: Self.folder)
        let found = pass.listing(folder, changes: changes, stamp: store.stamp)
        if let known = found.kept { return known }
        let stamp = store.stamp(folder)
        let names = try store.list(folder)
        pass.keep(names, folder, changes: changes, stamp: stamp, readIn: found.pass)
        return names
    }

    // MARK: - Observe

    public func observe(_ desired: DesiredState, now: Date) async throws -> ObservedState {
        try observe(desired, only: nil, now: now)
    }

    /// The replicas of `services` (of every service with records when nil), as `observe` sees
    /// them: a pass for one service need not look at the processes and health of every other.
    public func observe(_ desired: DesiredState, only services: Set<String>?, now: Date) throws -> ObservedState {
        var observed = ObservedState()
        for (service, records) in try records(only: services) {
            var replicas: [Int: ObservedReplica] = [:]
            var protect = false
            for (index, record) in records {
                protect = protect || record.protect
                replicas[index] = observe(record, service: desired.services[service], now: now)
            }
            observed.services[service] = ObservedService(name: service, replicas: replicas, protect: protect)
        }
        return observed
    }

    /// One replica of `service` as it is now. Health is the recorded count of failures, plus one
    /// check now when `checkHealth` (past the start period), counted as the loop counts it.
    public func observe(_ record: Record, service: Service?, now: Date) -> ObservedReplica {
        let alive = ProcessTable.isAlive(record.pid, startTime: record.startTime)
        let startedAt = ProcessTable.startDate(startTime: record.startTime, recorded: record.startedAt, now: now)
        var state: ObservedReplica.Health = .unchecked
        if alive, let service, let health = health(of: service, index: record.index, port: record.port) {
            var failures = record.healthFailures
            var checked = record.lastCheck != nil
            if checkHealth, now.timeIntervalSince(startedAt) >= health.settings.startPeriod.seconds {
                failures = ReplicaHealth.failures(after: health.check(with: checks).ok, following: failures)
                checked = true
            }
            state = health.state(failures: failures, checked: checked, startedAt: startedAt, now: now)
        }
        let exit = record.lastExit.map { text in
            text + (record.exitedAt.map { " at \(Self.clock($0))" } ?? "")
        } ?? "is gone (pid \(record.pid) ended)"
        return ObservedReplica(
            index: record.index, status: alive ? .running : .exited, pid: record.pid, startTime: record.startTime,
            specHash: record.specHash, port: record.port, health: state, restarts: record.restarts,
            lastExit: alive ? record.lastExit : exit, startedAt: record.startedAt)
    }

    static func clock(_ date: Date) -> String { String(RFC3339.format(date).dropFirst(11).dropLast()) }

    // MARK: - Perform

    /// A start waits for its intent just before the spawn (`start`).
    public func waitsForIntent(of change: Change) -> Bool { change.action == .service(.startReplica) }

    /// A failure names the replica (`ActionOutcome.naming`).
    public func perform(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        await performing(change, desired: desired).naming(change)
    }

    private func performing(_ change: Change, desired: DesiredState) async -> ActionOutcome {
        guard let index = change.resource.replica, case .service(let action) = change.action else {
            return .failed("not a replica change")
        }
        let name = change.resource.name
        do {
            switch action {
            case .startReplica:
                guard let service = desired.services[name] else { return .failed("not in the release") }
                return try start(service, index)
            case .replaceReplica:
                guard let service = desired.services[name] else { return .failed("not in the release") }
                let stopped = try stop(name, index, signalName: service.run.stopSignal, timeout: service.run.stopTimeout.seconds)
                guard stopped.ok else { return stopped }
                let started = try start(service, index)
                guard started.ok else { return started }
                let healthy = await waitHealthy(service, index)
                return healthy.ok ? .done("\(stopped.detail); \(started.detail); \(healthy.detail)") : healthy
            case .stopReplica:
                let run = desired.services[name]?.run
                return try stop(name, index, signalName: run?.stopSignal, timeout: run?.stopTimeout.seconds)
            }
        } catch {
            return .failed("\(error)")
        }
    }

    /// The health check of replica `index` of `service` running on `port`, with the
    /// environment the replica runs with; nil when the service has none.
    public func health(of service: Service, index: Int, port: Int?) -> ReplicaHealth? {
        guard let settings = service.health else { return nil }
        return ReplicaHealth(
            settings: settings, port: port, environment: replicaEnvironment(service.metadata.name, index, port: port, env: service.run.env))
    }

    public func replicaEnvironment(_ service: String, _ index: Int, port: Int?, env: [String: String]) -> [String: String] {
        var environment = baseEnvironment.merging(env) { $1 }
        if let port { environment["PORT"] = String(port) }
        environment["STET_SERVICE"] = service
        environment["STET_REPLICA"] = String(index)
        return environment
    }

    /// Absolute, as the replica opens it after changing to its working directory: a file on
    /// this host's disk (`StateStore.localPath`), whose `logs` folder is checked and made here.
    /// `service` and `index` come from a record or the release, both checked (`key`).
    public func logPath(_ service: String, _ index: Int) throws -> String {
        try store.localPath("logs/\(try StateKey.name(service))-\(try StateKey.index(index)).log")
    }

    /// Starts replica `index` unless the same spec already runs there.
    public func start(_ service: Service, _ index: Int, now: Date = Date()) throws -> ActionOutcome {
        let name = service.metadata.name
        // The name and index make paths (record, log): checked before anything is written.
        _ = try Self.key(name, index)
        guard index < service.replicas else {
            return .failed("replica \(index) is beyond the \(service.replicas) replicas the release asks for")
        }
        let spec = Data(service.run.specText.utf8).sha256Reference
        let previous = try record(name, index)
        if let previous, ProcessTable.isAlive(previous.pid, startTime: previous.startTime) {
            if previous.specHash == spec {
                // Saved again: a start cut short before its pid was recorded adopts the process.
                try save(previous)
                return .done("already running as pid \(previous.pid)")
            }
            return .failed("replica \(index) still runs pid \(previous.pid) with another spec; replace it instead")
        }
        let port = service.run.portsStart.map { $0 + index }
        if let port, !(1...65535).contains(port) { return .failed("replica \(index) would get PORT=\(port), beyond 65535") }
        // Never as Stet's own user when Stet is root: the replica could change Stet's state.
        let user: ReplicaUser?
        do {
            user = try ReplicaUser.resolve(service.run.user)
        } catch {
            return .failed("cannot start replica \(index): \(error)")
        }
        let logPath = try logPath(name, index)
        var directory = service.run.workingDir ?? "."
        if !directory.hasPrefix("/") { directory = (baseDirectory as NSString).appendingPathComponent(directory) }
        // Recorded before the spawn with an instance token the process carries, so a crash
        // between the spawn and the record still leaves a way to find the process.
        let instance = String(format: "%08x%08x", UInt32.random(in: 0...UInt32.max), UInt32.random(in: 0...UInt32.max))
        var record = Record(
            service: name, index: index, pid: 0, startTime: 0, specHash: spec, port: port, startedAt: now,
            restarts: min((previous?.restarts ?? -1) + 1, Self.maximumCount), lastExit: previous?.lastExit, exitedAt: nil, protect: service.protect,
            instance: instance, stopSignal: service.run.stopSignal, stopTimeout: service.run.stopTimeout.seconds,
            healthFailures: 0, lastCheck: nil)
        // Not waiting for the disk: the record is there for a Stet started after this one is
        // killed. Only a power loss could undo it, and that ends the process too; what it leaves
        // (the record before, or an empty file) names no process. `save` below makes it last.
        try write(record, by: store.stage)
        var environment = replicaEnvironment(name, index, port: port, env: service.run.env)
        environment["STET_INSTANCE"] = instance
        // A replica of an active/passive service starts as a standby; only a promote makes it the primary.
        if service.failover != nil { environment["STET_ROLE"] = "standby" }
        // The intent's fsync ran beside all of the above; nothing is started before it is durable.
        do {
            try ActionBegun.mayBegin()
        } catch {
            try putBack(previous, name, index)
            return .failed("cannot start replica \(index): its intent could not be recorded: \(error)")
        }
        rotate(logPath)
        var pid: pid_t = 0
        let rc = Spawn.start(
            service.run.command, environment: environment, workingDirectory: directory, logPath: logPath, identity: user, pid: &pid)
        guard rc == 0 else {
            try putBack(previous, name, index)
            return .failed(
                "cannot start \(service.run.command[0]) in \(directory)" + (user.map { " as user \($0.name)" } ?? "")
                    + ": \(String(cString: strerror(rc)))")
        }
        spawned(name, index, pid)
        ActionBegun.now()
        // The start time is read right after the spawn; a process that is already gone leaves
        // no start time, and is recorded as exited.
        record.pid = pid
        record.startTime = ProcessTable.entry(pid)?.startTime ?? 0
        let startTime = record.startTime
        try save(record)
        // A replica that fails at once (a typo in the command, a port in use) fails the action.
        if startCheck > 0 { usleep(useconds_t(saturating: startCheck * 1e6)) }
        if !ProcessTable.isAlive(pid, startTime: startTime) {
            record.lastExit = ProcessTable.reap(pid) ?? "ended at once"
            record.exitedAt = Date()
            try save(record)
            return .failed("replica \(index) \(record.lastExit!) right after starting (see \(logPath))")
        }
        return .done("started pid \(pid)" + (port.map { " on port \($0)" } ?? "") + (user.map { " as user \($0.name)" } ?? ""))
    }

    /// A start that started nothing leaves the record as it found it: the record before it, or
    /// none. So the next pass sees the same exit (drift, with its backoff and budget), and the
    /// replica's restarts and last exit are kept.
    private func putBack(_ previous: Record?, _ name: String, _ index: Int) throws {
        if let previous { try save(previous) } else { try remove(name, index) }
    }

    /// Runs a failover command of replica `index` (`spec.failover.promote` or `demote`): with the
    /// replica's environment plus `STET_ROLE=role`, as its user, in its working directory, its
    /// output appended to the replica's log. It is killed with everything it started once
    /// `timeout` seconds have passed, or earlier at `limit()` (`BootClock` nanoseconds, read again
    /// every 5 ms: a node's lease may end meanwhile). `extra` adds to the environment
    /// (`STET_FENCE_TOKEN`).
    public func runRoleCommand(
        _ service: Service, _ index: Int, _ command: [String], role: String, timeout: Double, environment extra: [String: String] = [:],
        limit: @escaping @Sendable () -> UInt64 = { .max }
    ) async -> ActionOutcome {
        guard !command.isEmpty else { return .done("no command to run") }
        let name = service.metadata.name
        let user: ReplicaUser?
        let logPath: String
        do {
            _ = try Self.key(name, index)
            user = try ReplicaUser.resolve(service.run.user)
            logPath = try self.logPath(name, index)
        } catch {
            return .failed("cannot run \(command[0]) for replica \(index): \(error)")
        }
        var directory = service.run.workingDir ?? "."
        if !directory.hasPrefix("/") { directory = (baseDirectory as NSString).appendingPathComponent(directory) }
        var environment = replicaEnvironment(name, index, port: service.run.portsStart.map { $0 + index }, env: service.run.env)
        environment["STET_ROLE"] = role
        environment.merge(extra) { $1 }
        let started = BootClock.now()
        let end = min(started &+ UInt64(saturating: max(0, timeout) * 1e9), limit())
        guard started < end else { return .failed("no time left to run \(command[0])") }
        var pid: pid_t = 0
        let rc = Spawn.start(command, environment: environment, workingDirectory: directory, logPath: logPath, identity: user, pid: &pid)
        guard rc == 0 else { return .failed("cannot start \(command[0]): \(String(cString: strerror(rc)))") }
        // Waited for without reaping (WNOWAIT), so its session is killed while its pid is still
        // its own; then reaped.
        var info = siginfo_t()
        var exited = false
        while true {
            info = siginfo_t()
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid {
                exited = true
                break
            }
            if BootClock.now() >= min(end, limit()) { break }
            // Never spins: a cancelled task's sleep returns at once.
            if Task.isCancelled { usleep(5_000) } else { try? await Task.sleep(nanoseconds: 5_000_000) }
        }
        kill(-pid, SIGKILL)
        if !exited { kill(pid, SIGKILL) }
        // Bounded: a command stuck where SIGKILL cannot reach it (a hung mount) is left to the kernel.
        var status: Int32 = 0
        var reaped = false
        for _ in 0..<400 {
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid { reaped = true; break }
            if result < 0 && errno != EINTR { break }
            usleep(5_000)
        }
        guard exited else {
            return .failed("\(command[0]) did not finish " + (BootClock.now() >= started &+ UInt64(saturating: timeout * 1e9)
                ? "within \(StetDuration(seconds: timeout))" : "before the node's lease could end") + " and was killed (see \(logPath))")
        }
        guard reaped else { return .failed("\(command[0]) could not be reaped") }
        let signal = status & 0x7f
        if signal != 0 { return .failed("\(command[0]) was killed by signal \(signal) (see \(logPath))") }
        let code = (status >> 8) & 0xff
        return code == 0 ? .done("\(command[0]) exited 0") : .failed("\(command[0]) exited \(code) (see \(logPath))")
    }

    /// Stops replica `index`: its stop signal to the whole session, the stop timeout, then
    /// SIGKILL. Never signals a pid whose start time is not the recorded one.
    public func stop(_ service: String, _ index: Int, signalName: String? = nil, timeout: Double? = nil) throws -> ActionOutcome {
        guard let record = try record(service, index) else { return .done("replica \(index) was not running") }
        var detail = "replica \(index) was not running"
        if ProcessTable.isAlive(record.pid, startTime: record.startTime) {
            let signalName = signalName ?? record.stopSignal ?? "SIGTERM"
            let timeout = timeout ?? record.stopTimeout ?? 10
            let signal = ProcessTable.signals[signalName] ?? SIGTERM
            ProcessTable.signalReplica(record.pid, signal)
            let deadline = Date().addingTimeInterval(timeout)
            while ProcessTable.isAlive(record.pid, startTime: record.startTime), Date() < deadline {
                _ = ProcessTable.reap(record.pid)
                usleep(10_000)
            }
            if ProcessTable.isAlive(record.pid, startTime: record.startTime) {
                ProcessTable.signalReplica(record.pid, SIGKILL)
                detail = "stopped pid \(record.pid) with SIGKILL after \(signalName) timed out"
                let killDeadline = Date().addingTimeInterval(5)
                while ProcessTable.isAlive(record.pid, startTime: record.startTime), Date() < killDeadline {
                    _ = ProcessTable.reap(record.pid)
                    usleep(10_000)
                }
            } else {
                detail = "stopped pid \(record.pid)"
            }
            _ = ProcessTable.reap(record.pid)
        }
        try remove(service, index)
        return .done(detail)
    }

    /// Waits until replica `index` is ready: healthy as `ReplicaHealth.state` means it (its check
    /// passes and its start period is over), or, without a check, still running. Bounded by
    /// `timeout` seconds, by default `ReplicaHealth.waitLimit`; checks every 100 ms from the end
    /// of the start period. Each result is reported (`ActionProgress`). A failure names the
    /// replica's last check result and its log.
    public func waitHealthy(_ service: Service, _ index: Int, timeout: Double? = nil) async -> ActionOutcome {
        let name = service.metadata.name
        guard let record = try? record(name, index) else { return .failed("replica \(index) has no record") }
        let log = (try? logPath(name, index)) ?? "its log"
        guard let check = health(of: service, index: index, port: record.port) else {
            return ProcessTable.isAlive(record.pid, startTime: record.startTime)
                ? .done("running") : .failed("replica \(index) exited after starting (see \(log))")
        }
        let limit = timeout ?? check.waitLimit
        let deadline = Date().addingTimeInterval(max(limit, 0))
        var last: CheckRunner.Result?
        while true {
            guard ProcessTable.isAlive(record.pid, startTime: record.startTime) else {
                return .failed("replica \(index) exited before it was healthy (see \(log))")
            }
            let now = Date()
            if now >= check.firstCheck(startedAt: record.startedAt, now: now) {
                let result = check.check(with: checks)
                last = result
                let after = Date()
                if check.state(failures: result.ok ? 0 : 1, checked: true, startedAt: record.startedAt, now: after) == .healthy {
                    return .done("healthy (\(result.detail))")
                }
                ActionProgress.report("last check " + (result.ok ? "passed" : "failed") + ": \(result.detail)")
            } else {
                ActionProgress.report("in its start period")
            }
            guard Date() < deadline else { break }
            // Every 100 ms once checks are due; in the start period, until it ends (at most 0.5 s).
            let untilCheck = check.firstCheck(startedAt: record.startedAt, now: Date()).timeIntervalSinceNow
            let pause = min(max(untilCheck, 0.1), 0.5, max(deadline.timeIntervalSinceNow, 0.01))
            try? await Task.sleep(nanoseconds: UInt64(saturating: pause * 1e9))
        }
        let found = last.map { "last check \($0.ok ? "passed" : "failed"): \($0.detail)" } ?? "not checked yet (still in its start period)"
        return .failed("not healthy within \(StetDuration(seconds: limit).rounded); \(found); log: \(log)")
    }

    /// Waits for a started or replaced replica (`waitHealthy`); nil for any other change.
    public func awaitReady(_ change: Change, desired: DesiredState, timeout: Double?) async -> ActionOutcome? {
        guard let index = change.resource.replica, change.action == .service(.startReplica) || change.action == .service(.replaceReplica)
        else { return nil }
        guard let service = desired.services[change.resource.name] else { return ActionOutcome.failed("not in the release").naming(change) }
        return await waitHealthy(service, index, timeout: timeout).naming(change)
    }

    /// Keeps a log file under `logLimit`: copies it to `.1` and truncates it in place (the
    /// replica appends, so it writes on at the new end).
    public func rotate(_ path: String) {
        var info = stat()
        // Only a regular file of its own: a link in its place is neither read nor truncated.
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) > logLimit else { return }
        let old = path + ".1"
        unlink(old)
        guard (try? FileManager.default.copyItem(atPath: path, toPath: old)) != nil else { return }
        let fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        ftruncate(fd, 0)
        close(fd)
    }
}

/// Records as last decoded, by key and the exact bytes they came from (`ReplicaProvider.record`).
final class DecodedRecords: @unchecked Sendable {
    private let lock = NSLock()
    private var known: [String: (data: Data, record: ReplicaProvider.Record)] = [:]

    func record(_ key: String, _ data: Data) -> ReplicaProvider.Record? {
        lock.withLock { known[key].flatMap { $0.data == data ? $0.record : nil } }
    }

    func keep(_ record: ReplicaProvider.Record, _ key: String, _ data: Data) {
        lock.withLock {
            // Bounded: far more than the replicas of any host.
            if known.count >= 4096 { known = [:] }
            known[key] = (data, record)
        }
    }
}

/// Records and folder listings as the loop's passes last read or wrote them
/// (`ReplicaProvider.beginPass`), used again only within a pass (the state lock held), and only
/// while nothing could have changed them unseen:
/// - no other holder of the state lock came between the passes that read them (the lock's
///   tenure is the same), and at most `maximumAge` passed since the first of them;
/// - this process made no change under `replicas/` but through this provider, which keeps what
///   it writes (`StateStore.changes`: another provider of this process, as the fleet's tasks
///   make, or a writer around providers altogether, moves the count);
/// - each file and folder kept still has the stamp it had when it was read or written
///   (`StateStore.stamp`), compared once per pass: a holder that does not mark its holds (a Stet
///   from before the token) changes them, and an edit by hand does.
/// Without a tenure, what one pass read is not used in the next. Outside a pass nothing kept is
/// used: the lock is not held, and another process may write.
final class PassRecords: @unchecked Sendable {
    /// A value kept, the stamp of its file or folder, and the pass that last compared it.
    private struct Kept<Value> {
        var value: Value
        var stamp: StateStamp
        var compared: UInt64
    }

    private let lock = NSLock()
    private var active = false
    /// The number of the pass under way or last ended.
    private var pass: UInt64 = 0
    /// The tenure and count of changes what is kept was read under, and when the first of it was
    /// read (monotonic nanoseconds); nil when nothing may be kept.
    private var basis: (tenure: UInt64?, changes: UInt64, since: UInt64)?
    /// A value of nil: no record in that file.
    private var records: [String: Kept<ReplicaProvider.Record?>] = [:]
    private var listings: [String: Kept<[String]>] = [:]

    /// How long reads are kept across passes under one tenure.
    static let maximumAge: UInt64 = 10_000_000_000

    func begin(tenure: UInt64?, changes: UInt64?, now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        lock.withLock {
            active = true
            pass &+= 1
            if let basis, let tenure, basis.tenure == tenure, basis.changes == changes, now &- basis.since < Self.maximumAge { return }
            clear(basis: changes.map { (tenure, $0, now) })
        }
    }

    func end() {
        lock.withLock {
            active = false
            if basis?.tenure == nil { clear(basis: nil) }
        }
    }

    private func clear(basis: (tenure: UInt64?, changes: UInt64, since: UInt64)?) {
        self.basis = basis
        records = [:]
        listings = [:]
    }

    /// Whether what is kept may be used, `changes` the store's count now. A count that moved on
    /// drops it all, and what is read next is kept under the new count; an older count (taken
    /// by a slow reader) only finds nothing.
    private func usable(_ changes: UInt64?) -> Bool {
        guard active, let basis, let changes else { return false }
        if basis.changes == changes { return true }
        if changes > basis.changes { clear(basis: (basis.tenure, changes, basis.since)) }
        return false
    }

    /// The pass under way or last ended, as a write notes it before it begins (`wrote`).
    var number: UInt64 { lock.withLock { pass } }

    /// The value kept in `kept` for `key`, its stamp compared with `stamp(key)` once per pass.
    private func value<Value>(_ kept: inout [String: Kept<Value>], _ key: String, _ stamp: (String) -> StateStamp?) -> Value? {
        guard var entry = kept[key] else { return nil }
        if entry.compared != pass {
            guard stamp(key) == entry.stamp else {
                kept[key] = nil
                return nil
            }
            entry.compared = pass
            kept[key] = entry
        }
        return entry.value
    }

    /// What a look found: the value kept (`.some(nil)` for a file that holds no record), or nil
    /// and the pass a read made now may be kept in (`keep`).
    func record(_ key: String, changes: UInt64?, stamp: (String) -> StateStamp?) -> (kept: ReplicaProvider.Record??, pass: UInt64) {
        lock.withLock { (usable(changes) ? value(&records, key, stamp) : nil, pass) }
    }

    /// Keeps `record`, read after the store's count was `changes` and the file's stamp `stamp`,
    /// by a look made in pass `readIn`: a read that began before this pass did not see what
    /// may have changed before it, and is not kept as compared in it.
    func keep(_ record: ReplicaProvider.Record?, _ key: String, changes: UInt64?, stamp: StateStamp?, readIn: UInt64) {
        lock.withLock {
            if readIn == pass, usable(changes), let stamp { records[key] = Kept(value: record, stamp: stamp, compared: pass) }
        }
    }

    func listing(_ folder: String, changes: UInt64?, stamp: (String) -> StateStamp?) -> (kept: [String]?, pass: UInt64) {
        lock.withLock { (usable(changes) ? value(&listings, folder, stamp) : nil, pass) }
    }

    func keep(_ names: [String], _ folder: String, changes: UInt64?, stamp: StateStamp?, readIn: UInt64) {
        lock.withLock {
            if readIn == pass, usable(changes), let stamp { listings[folder] = Kept(value: names, stamp: stamp, compared: pass) }
        }
    }

    /// This provider wrote `record` at `key` (nil: a record that must be read again), the
    /// store's count `before` and `after` the write, the folder's stamp `folderBefore` it, the
    /// pass `writtenIn` under way (or last ended) when it began. Kept only when the whole write
    /// was made within this pass (the lock held: nobody else writes between the write and its
    /// stamp) and it was the one change under `replicas/` meanwhile; anything else drops all
    /// that is kept. The folder's listing stays, with the folder's new stamp, when it named
    /// the file and the folder had not changed since it was listed; otherwise it is listed
    /// again, and so is its parent when the file may be new.
    func wrote(
        _ key: String, _ record: ReplicaProvider.Record?, before: UInt64?, after: UInt64?, folderBefore: StateStamp?,
        writtenIn: UInt64, stamp: (String) -> StateStamp?
    ) {
        changed(key, before: before, after: after) { folder, name in
            let inPass = active && writtenIn == pass
            if inPass, let record, let fileStamp = stamp(key) {
                records[key] = Kept(value: record, stamp: fileStamp, compared: pass)
            } else {
                records[key] = nil
            }
            guard var names = listings[folder], names.value.contains(name) else { return .folderAndParent }
            guard inPass, names.stamp == folderBefore, let folderStamp = stamp(folder) else { return .folder }
            names.stamp = folderStamp
            listings[folder] = names
            return .none
        }
    }

    /// This provider removed `key`: its folder's listing is read again.
    func removed(_ key: String, before: UInt64?, after: UInt64?) {
        changed(key, before: before, after: after) { _, _ in
            records[key] = nil
            return .folder
        }
    }

    /// The listings a change leaves to read again.
    private enum Relist { case none, folder, folderAndParent }

    /// `body` keeps what a change at `key` left (given the key's folder and name), returning the
    /// listings to read again; the change must be the one counted between `before` and
    /// `after`, or all that is kept is dropped.
    private func changed(_ key: String, before: UInt64?, after: UInt64?, _ body: (String, String) -> Relist) {
        lock.withLock {
            guard let basis, let before, let after, basis.changes == before, after == before &+ 1 else {
                if basis != nil { clear(basis: nil) }
                return
            }
            self.basis = (basis.tenure, after, basis.since)
            let folder = StateKey.folder(of: key)
            switch body(folder, String(key.dropFirst(folder.isEmpty ? 0 : folder.count + 1))) {
            case .none: break
            case .folder: listings[folder] = nil
            case .folderAndParent:
                listings[folder] = nil
                listings[StateKey.folder(of: folder)] = nil
            }
        }
    }
}

/// Exits the loop found and has not written (`ReplicaProvider.noteExit`), by replica.
final class PendingExits: @unchecked Sendable {
    struct Exit {
        let service: String
        let index: Int
        let pid: Int32
        let startTime: UInt64
        let instance: String?
        let lastExit: String?
        let exitedAt: Date?
    }

    private let lock = NSLock()
    private var exits: [String: Exit] = [:]

    func note(_ record: ReplicaProvider.Record) {
        lock.withLock {
            exits["\(record.service)#\(record.index)"] = Exit(
                service: record.service, index: record.index, pid: record.pid, startTime: record.startTime, instance: record.instance,
                lastExit: record.lastExit, exitedAt: record.exitedAt)
        }
    }

    /// The exit kept for the process `record` names, if any: the same pid, start time and
    /// instance. A pending record (pid 0) is never matched: every one has pid 0 and start 0.
    func exit(of record: ReplicaProvider.Record) -> Exit? {
        guard record.exitedAt == nil, record.pid != 0 else { return nil }
        return lock.withLock {
            exits["\(record.service)#\(record.index)"].flatMap {
                $0.pid == record.pid && $0.startTime == record.startTime && $0.instance == record.instance ? $0 : nil
            }
        }
    }

    func take() -> [Exit] {
        lock.withLock {
            defer { exits = [:] }
            return exits.values.sorted { ($0.service, $0.index) < ($1.service, $1.index) }
        }
    }
}

extension ReplicaProvider.Record {
    /// The record as decoding its JSON gives it back: times to the second as RFC 3339 writes
    /// them (`JSONCoding`); every other field reads back as it is. Nil if a time would not read
    /// back at all.
    var asStored: Self? {
        func stored(_ date: Date) -> Date? { RFC3339.parse(RFC3339.format(date)) }
        var record = self
        guard let startedAt = stored(startedAt) else { return nil }
        record.startedAt = startedAt
        if let exitedAt {
            guard let exited = stored(exitedAt) else { return nil }
            record.exitedAt = exited
        }
        if let lastCheck {
            guard let checked = stored(lastCheck) else { return nil }
            record.lastCheck = checked
        }
        return record
    }
}
