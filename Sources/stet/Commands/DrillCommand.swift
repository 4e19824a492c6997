import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetFleet
import StetManifest
import StetPlanner
import StetProviders
import StetState

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Test a promise for real: a service's redundancy, a backup's restore, a monitor's alerts.",
        discussion: """
            Drills also run on a schedule under `stet run` (a Service's or a Monitor's spec.drill; a \
            BackupPolicy's verify.restoreTest). Each drill is recorded in the audit log \
            (`stet audit list --kind drill`) with its evidence; a failed drill makes the resource \
            unhealthy in `stet status` (exit 3) until one passes.
            """,
        subcommands: [DrillServiceCommand.self, DrillBackupCommand.self, DrillMonitorCommand.self]
    )
}

struct DrillServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Kill one replica of a service and prove that a replacement is healthy in time.",
        discussion: """
            Kills the replica longest since its last drill (SIGKILL to its process group, as a crash), \
            then waits until `stet run` has started a replacement that passes its health check, at \
            most the service's spec.drill.recoverWithin (or --recover-within). Needs a `stet run` on \
            this state directory: without one nothing would replace the replica, and nothing is \
            killed. Only when the service meets its promise.

            EXIT STATUS
              0   a healthy replacement in time
              1   none in time (the evidence is printed and recorded), or the drill could not start
              10  the release or the audit log was refused
            """
    )

    @Argument(help: "The service's name.")
    var name: String

    @Option(name: .customLong("recover-within"), help: ArgumentHelp(
        "Seconds the replacement has to be healthy (default: the service's spec.drill.recoverWithin, else 30).", valueName: "seconds"))
    var recoverWithin: Double?

    func validate() throws { if let recoverWithin { try Seconds.check(recoverWithin, "--recover-within", 0.1...300) } }

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let (session, inForce) = try OperatorSession.inForce(global: global, key: privateKey)
        defer { try? session.close() }
        let desired = FleetShare.load(from: global.store).map { $0.apply(to: inForce.desired) } ?? inForce.desired
        guard let service = desired.services[name] else {
            throw CommandFailure(status: ExitStatus.error, message: "no service \(name) in release version \(inForce.accepted.version), in force")
        }
        let resource = ResourceID(.service, name)
        let release = AuditContext.acceptedRelease(global.store)
        let bound = recoverWithin.map { StetDuration(seconds: $0) } ?? service.drill?.recoverWithin ?? .seconds(30)
        guard StateLock.isHeld(store: global.store, name: "run.lock") else {
            let message = "no `stet run` runs on \(global.store.root): nothing would replace a killed replica, so nothing was killed"
            try session.log.append(AuditRecord(kind: .refusal, release: release, resource: resource.description, action: "drill", error: message))
            throw CommandFailure(status: ExitStatus.error, message: message)
        }
        let provider = ReplicaProvider(store: global.store)
        let kill: Drills.ServiceKill
        do {
            let lock = try StateLock(store: global.store, timeout: global.lockTimeout)
            defer { lock.release() }
            kill = try Drills.killReplica(
                of: service, desired: desired, provider: provider, store: global.store, audit: session.log, release: release,
                recoverWithin: bound)
        } catch let notStarted as Drills.NotStarted {
            try session.log.append(AuditRecord(
                kind: .refusal, release: release, resource: resource.description, action: "drill", error: notStarted.message))
            throw CommandFailure(status: ExitStatus.error, message: notStarted.message + "; nothing was killed")
        }
        let out = Terminal.standardOutput
        out.line("killed replica \(kill.index) (pid \(kill.pid)); waiting up to \(bound) for a healthy replacement")
        let verdict = await Drills.awaitRecovery(kill, service: service, provider: provider)
        try Drills.record(verdict, of: resource, store: global.store, audit: session.log, release: release)
        DrillOutput.print(verdict, json: global.json)
        if !verdict.ok { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }
}

struct DrillBackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Restore a backup policy's newest snapshot into a scratch folder and compare it (a restore test, now).",
        discussion: """
            Runs the policy's restore-test action now, as `stet run` does at verify.restoreTest: \
            restic restores the newest snapshot of the policy into a temporary folder beside the \
            state directory and the restored files are compared with the snapshot's listing. \
            Recorded as an action (intent and result) and as a drill verdict.

            EXIT STATUS
              0   the restore test passed
              1   it failed (why is printed and recorded)
              10  the release or the audit log was refused
              11  the state directory is locked by another command
            """
    )

    @Argument(help: "The backup policy's name.")
    var name: String

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let lock = try StateLock(store: global.store, timeout: global.lockTimeout)
        defer { lock.release() }
        let (session, inForce) = try OperatorSession.inForce(global: global, key: privateKey)
        defer { try? session.close() }
        let desired = inForce.desired
        guard desired.backupPolicies[name] != nil else {
            throw CommandFailure(status: ExitStatus.error, message: "no backup policy \(name) in release version \(inForce.accepted.version), in force")
        }
        let resource = ResourceID(.backupPolicy, name)
        let release = AuditContext.acceptedRelease(global.store)
        try Drills.recordStart(resource, reason: "restore test of the newest snapshot, on demand", store: global.store, audit: session.log,
                               release: release)
        let started = Date()
        let change = Change(
            resource: resource, action: .backup(.restoreTest), cause: .schedule, reason: Reason("drill", "restore test on demand (`stet drill backup`)"),
            before: nil, after: nil, disruption: .none, precondition: "")
        let createdAt = RFC3339.format(started)
        let id = "plan-" + SHA256.hash(Data("drill \(resource) \(createdAt)".utf8)).hexString.prefix(16)
        let plan = Plan(id: id, createdAt: createdAt, release: release, changes: [change], notices: [])
        let report = try await Applier(provider: HostProvider(store: global.store), audit: session.log, store: global.store, release: release)
            .apply(plan, desired: desired)
        let outcome = report.results.first?.outcome ?? .failed("not run")
        let verdict = Drills.Verdict(
            at: started, ok: outcome.ok, seconds: Date().timeIntervalSince(started),
            detail: outcome.ok ? "restore test passed: \(outcome.detail)" : "restore test failed: \(outcome.error ?? "")")
        try Drills.record(verdict, of: resource, store: global.store, audit: session.log, release: release)
        DrillOutput.print(verdict, json: global.json)
        if !verdict.ok { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }
}

/// A drill's verdict on the terminal, or as JSON.
enum DrillOutput {
    static func print(_ verdict: Drills.Verdict, json: Bool) {
        let out = Terminal.standardOutput
        if json { return out.json(verdict) }
        out.line((verdict.ok ? out.green("passed") : out.red("FAILED")) + "  \(TextEscaping.escape(verdict.detail))")
    }
}

struct DrillMonitorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract: "Fire a test alert through a monitor's notifiers, confirm delivery, then resolve it.",
        discussion: """
            Sends an alert named StetDrill (labels: the monitor's, drill="true") to every notifier \
            of the monitor. For Alertmanager, delivery is confirmed by finding the alert in its API; \
            for a webhook or a command, by their accepting it. Then the alert is resolved. Recorded \
            in the audit log (intent and result). The monitor and its notifiers are those of the \
            release in force (kept in the state directory).

            EXIT STATUS
              0   every notifier took the alert
              1   a notifier did not (named in the output and the audit log)
              10  the release or the audit log was refused
            """
    )

    @Argument(help: "The monitor's name.")
    var name: String

    @Option(help: ArgumentHelp("Seconds to wait for Alertmanager to show the alert.", valueName: "seconds"))
    var timeout: Double = 15

    func validate() throws { try Seconds.check(timeout, "--timeout", 0.1...3600) }

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let (session, inForce) = try OperatorSession.inForce(global: global, key: privateKey)
        defer { try? session.close() }
        let desired = inForce.desired
        guard let monitor = desired.monitors[name] else {
            throw CommandFailure(status: ExitStatus.error, message: "no monitor \(name) in release version \(inForce.accepted.version), in force")
        }
        let resource = ResourceID(.monitor, name)
        let release = AuditContext.acceptedRelease(global.store)
        try Drills.recordStart(
            resource, reason: "test alert through \(monitor.notify.joined(separator: ", "))", store: global.store, audit: session.log,
            release: release)
        let started = Date()
        let out = Terminal.standardOutput
        let drill = MonitorDrill(sender: NotifierSender { Terminal.standardError.line($0) }, timeout: timeout)
        let deliveries = drill.run(monitor, notifiers: desired.notifiers, now: started) { delivery in
            if let failure = delivery.failure {
                out.line(out.red("failed") + "  \(delivery.notifier): \(failure)")
            } else {
                out.line(out.green("delivered") + "  \(delivery.notifier)" + (delivery.confirmedAt.map { ": visible in \($0)" } ?? ""))
            }
        }
        let failures = deliveries.compactMap { delivery in delivery.failure.map { "\(delivery.notifier): \($0)" } }
        try Drills.record(
            Drills.Verdict(
                at: started, ok: failures.isEmpty && !deliveries.isEmpty, seconds: Date().timeIntervalSince(started),
                detail: deliveries.isEmpty ? "the monitor has no notifier: the test alert reached no one"
                    : failures.isEmpty ? "every notifier took the test alert; resolved" : failures.joined(separator: "; ")),
            of: resource, store: global.store, audit: session.log, release: release)
        if !failures.isEmpty || deliveries.isEmpty {
            throw CommandFailure(status: ExitStatus.error, message: deliveries.isEmpty ? "the monitor has no notifier: the test alert reached no one" : nil)
        }
        out.line("resolved the drill alert")
    }
}
