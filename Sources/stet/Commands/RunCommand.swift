import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetState

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Keep the host matching the accepted release: the reconcile loop.",
        discussion: """
            Watches every replica (a pidfd each: an exit is seen at once), runs health checks on \
            their intervals, and corrects drift: a replica that exited or fails its checks is \
            started or replaced, each action signed into the audit log with the drift that caused \
            it. Corrections back off per service (restart.backoff) and stop after --budget per \
            service per hour, with an alert entry. A new signed release is picked up by digest \
            (checked every --interval, or at once on SIGHUP); a release that does not verify is \
            refused and recorded, and the one in force stays. SIGTERM or SIGINT: the current \
            actions finish, then exit 0. Replicas keep running.

            EXIT STATUS
              0   stopped by a signal (or --once: the pass succeeded)
              1   error (--once: an action failed)
              10  the audit log or the operator key was refused
              11  another stet process holds the state lock past --lock-timeout
            """
    )

    @OptionGroup var planning: PlanningOptions

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @Option(help: ArgumentHelp("Seconds between checks for a new release.", valueName: "seconds"))
    var interval: Double = 10

    @Option(help: ArgumentHelp("Corrective actions per service per hour before Stet stops correcting it.", valueName: "n"))
    var budget = 10

    @Flag(help: "One pass, then exit.")
    var once = false

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        // One loop per state directory; `plan` and `status` look at this lock to know one runs.
        let running = try StateLock(store: global.store, timeout: 0, name: "run.lock")
        defer { running.release() }
        let session = try OperatorSession(global: global, key: privateKey, policy: nil, via: "daemon")
        var options = ReconcileLoop.Options(manifests: planning.manifests, trustFile: global.trust)
        options.interval = interval
        options.budget = budget
        options.lockTimeout = global.lockTimeout
        options.once = once
        options.prune = planning.prune
        let loop = ReconcileLoop(options: options, store: global.store, audit: session.log)
        let json = global.json
        loop.log = { message in
            if json {
                Terminal.standardError.json(["time": RFC3339Now.text(), "message": message])
            } else {
                Terminal.standardError.line("\(RFC3339Now.text())  \(message)")
            }
        }
        Terminal.standardError.line("\(RFC3339Now.text())  stet run: watching \(planning.manifests), state in \(global.store.root)")
        let ok = try await loop.run()
        try session.close()
        Terminal.standardError.line("\(RFC3339Now.text())  stet run: stopped")
        if !ok { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }
}

enum RFC3339Now {
    static func text() -> String { RFC3339.format(Date(), milliseconds: true) }
}
