import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetManifest
import StetState

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify the signed release of a manifest directory.",
        discussion: """
            Checks, in order: the envelope and its type; signatures by distinct keys of the release \
            role, at least its threshold; expiry; the version against the accepted one (rollback, \
            equivocation); paths and symbolic links; every file's digest and that every manifest is \
            listed. Then parses the manifests.

            With --accept the release becomes the one in force: a copy of it is kept in the state \
            directory (releases/), where status, plan, run, down, drill and restore read it from.

            The trust policy in force is the one pinned in the state directory. Without one, a \
            read-only check uses the repository's keys/trust.yaml and says so; --accept refuses unless \
            --trust-on-first-use is given. Read-only unless --accept.

            With --accept, the operator key (--key or STET_KEY) signs the decision into the audit \
            log, accepted or refused, before anything else changes.

            EXIT STATUS
              0   the release verifies (and, with --accept, is recorded)
              1   error: manifests that do not parse, unreadable files, state I/O
              10  refused: the release or the trust policy failed verification
            """
    )

    @Argument(help: "Manifest directory.")
    var directory = "manifests"

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Record the release as accepted (and pin the trust policy on first use or rotation). Needs an operator key.")
    var accept = false

    @OptionGroup var key: KeyOption

    @Flag(help: "With no pinned trust policy, pin the repository's policy now. Trusts whoever can write to it today.")
    var trustOnFirstUse = false

    struct JSONReport: Encodable {
        var release: ReleaseReport?
        var trust: VerifyOutput.TrustReport?
        var resources: [String]?
        var accepted: Bool
        var refused: ReleaseReport.Refusal?
    }


    func run() throws {
        var gate = ReleaseGate(manifests: directory, trustFile: global.trust, store: global.store)
        gate.trustOnFirstUse = trustOnFirstUse
        let out = Terminal.standardOutput
        do {
            let passed = accept ? try verifyAndAccept(gate) : try gate.open(accept: false, now: Date())
            if global.json {
                out.json(JSONReport(
                    release: passed.release.report, trust: VerifyOutput.trustReport(passed.trust),
                    resources: passed.desired.resourceIDs.map(\.description), accepted: accept, refused: nil))
            } else {
                VerifyOutput.printReport(passed.release.report, trust: passed.trust)
                out.line("resources  \(Summary.counts(passed.desired.resourceIDs))")
                out.line("result     \(out.green("verified"))" + (accept ? ", accepted into \(global.store.root)" : ""))
            }
            for warning in passed.release.report.warnings { out.warning(warning) }
            VerifyOutput.trustWarnings(passed.trust, trustFile: global.trust, store: global.store.root, accepting: accept)
        } catch let refused as ReleaseGate.Refused {
            if global.json {
                out.json(JSONReport(
                    release: refused.report, trust: refused.trust.map(VerifyOutput.trustReport), resources: nil, accepted: false,
                    refused: ReleaseReport.Refusal(code: refused.error.code.rawValue, message: refused.error.message)))
            } else if let report = refused.report, let trust = refused.trust {
                VerifyOutput.printReport(report, trust: trust)
            }
            throw refused
        }
    }

    /// The acting path (`ReleaseAcceptance`): the operator key first, then the state lock, the
    /// audit log and the decision, which is recorded (accepted or refused) before the state
    /// directory changes.
    private func verifyAndAccept(_ gate: ReleaseGate) throws -> ReleaseGate.Passed {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let lock = try StateLock(store: global.store, timeout: global.lockTimeout)
        defer { lock.release() }
        let (session, passed) = try OperatorSession.verified(
            gate: gate, global: global, key: privateKey, action: "accept-release", directory: directory)
        try session.accept(passed, gate: gate, evenIfAccepted: true)
        try session.close()
        return passed
    }
}
