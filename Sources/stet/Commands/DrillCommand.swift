import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetManifest
import StetProviders

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Prove that monitoring reaches a person.",
        subcommands: [DrillMonitorCommand.self]
    )
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
        let resource = ResourceID(.monitor, name).description
        let release = AuditContext.acceptedRelease(global.store)
        try session.log.append(AuditRecord(
            kind: .intent, release: release, resource: resource, action: "drill",
            reason: "test alert through \(monitor.notify.joined(separator: ", "))"))
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
        try session.log.append(AuditRecord(
            kind: .result, release: release, resource: resource, action: "drill",
            reason: failures.isEmpty ? "every notifier took the test alert; resolved" : nil,
            outcome: failures.isEmpty ? .ok : .failed, error: failures.isEmpty ? nil : failures.joined(separator: "; "),
            durationMs: Int(saturating: Date().timeIntervalSince(started) * 1000)))
        if !failures.isEmpty { throw CommandFailure(status: ExitStatus.error, message: nil) }
        out.line("resolved the drill alert")
    }
}
