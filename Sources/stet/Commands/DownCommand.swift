import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetPlanner
import StetProviders
import StetState

/// Options of the commands that plan: where the manifests are, and pruning.
struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop every replica Stet runs on this host (protected services stay up).",
        discussion: """
            Plans the removal of every service's replicas, as `stet apply --prune` of an empty \
            release would, and applies it: each stop signed into the audit log. A running \
            `stet run` would start them again: stop it first.

            EXIT STATUS
              0   stopped (or nothing ran)
              1   error, or a stop failed
              11  another stet process holds the state lock
            """
    )

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @Option(help: ArgumentHelp("Only this service.", valueName: "name"))
    var service: String?

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let lock = try StateLock(store: global.store, timeout: global.lockTimeout)
        defer { lock.release() }
        let session = try OperatorSession(global: global, key: privateKey, policy: nil)
        defer { try? session.close() }
        let provider = ReplicaProvider(store: global.store)
        var observed = try await provider.observe(DesiredState(), now: Date())
        if let service { observed.services = observed.services.filter { $0.key == service } }
        let accepted = AuditContext.acceptedRelease(global.store)
        let plan = Planner.down(observed, release: accepted, now: Date())
        let out = Terminal.standardOutput
        out.write(PlanOutput.text(plan))
        let result = try await Applier(provider: provider, audit: session.log, store: global.store, release: accepted)
            .apply(plan, desired: DesiredState()) { result in
                out.line("\(result.outcome.ok ? out.green("ok") : out.red("failed"))  \(result.change.id)  \(result.outcome.ok ? result.outcome.detail : result.outcome.error ?? "")")
            }
        if result.failed { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }
}
