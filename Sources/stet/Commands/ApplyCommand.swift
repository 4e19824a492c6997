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
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Make the host match the verified release: plan and apply, or apply a saved plan.",
        discussion: """
            Takes the state lock, verifies the release, plans, and asks for approval; only then \
            accepts the release (recorded in the audit log, and kept in the state directory) and \
            applies each change with an intent entry before and a result entry after. Declined, \
            nothing is accepted and the release in force stays. Without FILE it plans afresh. With \
            FILE it applies that signed plan only if it is for the release in force or for the \
            manifests' verified release, was never applied before, and every change's observed \
            facts still hold. Asks for confirmation on a terminal; elsewhere needs --auto-approve.

            EXIT STATUS
              0   applied (or nothing to do)
              1   error, a change failed (the rest of its resource was skipped), or not approved
              10  the release, the trust policy or the plan's signature was refused
              11  another stet process holds the state lock
              12  the saved plan is stale: another release, already applied, or the world changed
            """
    )

    @Argument(help: "A plan saved by `stet plan --out`.")
    var planFile: String?

    @OptionGroup var planning: PlanningOptions

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @Flag(help: "Apply without asking.")
    var autoApprove = false

    /// What is applied: the release, its desired state, and the verified release to accept
    /// first when it is not the one in force.
    struct Target {
        var session: OperatorSession
        var release: ReleaseRef
        var desired: DesiredState
        var newRelease: (passed: ReleaseGate.Passed, gate: ReleaseGate, commit: String?)?
    }

    func run() async throws {
        let source = try planning.gitSource(global.store)
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let lock = try StateLock(store: global.store, timeout: global.lockTimeout)
        defer { lock.release() }
        let saved = try planFile.map { try readSavedPlan($0, key: privateKey) }
        let target = try self.target(for: saved, source: source, key: privateKey)
        let session = target.session
        defer { try? session.close() }
        let provider = HostProvider(store: global.store)
        let out = Terminal.standardOutput
        let interrupted = try Applier.recoverInterrupted(
            store: global.store, audit: session.log, release: AuditContext.acceptedRelease(global.store))
        if interrupted > 0 { out.warning("\(interrupted) action(s) of an earlier run were interrupted; recorded, and the host is observed again") }

        let observed = try await provider.observe(target.desired, now: Date())
        let plan: Plan
        if let saved {
            do {
                try PlanFile.admit(saved, release: target.release, store: global.store, observed: observed)
            } catch let stale as PlanFile.Stale {
                try session.refused(action: "apply", reason: "saved plan \(planFile ?? "") was refused", error: stale.message)
                throw stale
            }
            plan = saved
        } else {
            plan = Planner(prune: planning.prune).plan(desired: target.desired, observed: observed, release: target.release, now: Date())
        }
        if !global.json || plan.changes.isEmpty { out.write(PlanOutput.text(plan)) }
        if !plan.changes.isEmpty, !autoApprove { try approve(plan, release: target.release, session: session) }
        // Approved (or nothing to approve): only now does a new release come into force.
        if let new = target.newRelease { try session.accept(new.passed, gate: new.gate, commit: new.commit) }
        if plan.changes.isEmpty { return }
        if saved != nil { try PlanFile.markApplied(plan, in: global.store, now: Date()) }
        let applier = Applier(provider: provider, audit: session.log, store: global.store, release: target.release)
        let json = global.json
        let result = try await applier.apply(plan, desired: target.desired) { result in
            guard !json else { return }
            let mark = result.outcome.ok ? Terminal.standardOutput.green("ok") : Terminal.standardOutput.red("failed")
            Terminal.standardOutput.line("\(mark)  \(result.change.id)  \(result.outcome.ok ? result.outcome.detail : result.outcome.error ?? "")"
                + String(format: "  (%.1f s)", result.seconds))
        }
        if !json { await PlanOutput.probeOnce(target.desired, store: global.store, provider: provider) }
        report(result, plan: plan)
        if result.failed { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }

    /// The release to apply: a saved plan's, when it is the release in force (read from the
    /// state directory); otherwise the manifests' (or the git source's) release, verified, to be
    /// accepted once the plan is approved.
    private func target(for saved: Plan?, source: GitSource?, key: PrivateKey) throws -> Target {
        if let saved, (try AcceptedRelease.load(from: global.store))?.release.isSameRelease(as: saved.release) == true,
            let inForce = try ReleaseStore(store: global.store).inForce(trustFile: global.trust, now: Date())
        {
            let session = try OperatorSession(global: global, key: key, policy: nil)
            return Target(session: session, release: AuditContext.acceptedRelease(global.store), desired: inForce.desired)
        }
        let (gate, commit) = try planning.gate(global, source: source)
        let (session, passed) = try OperatorSession.verified(
            gate: gate, global: global, key: key, action: "apply",
            directory: commit.map { "\(planning.source ?? "") at commit \($0)" } ?? planning.manifests)
        var release = passed.release.release
        release.commit = commit
        return Target(session: session, release: release, desired: passed.desired, newRelease: (passed, gate, commit))
    }

    /// A saved plan signed by an operator key of the policy in force, in the planner's form; a
    /// refusal (exit 10) is recorded.
    private func readSavedPlan(_ file: String, key: PrivateKey) throws -> Plan {
        let data = try readInput(file, limit: InputFile.Limit.plan, what: "saved plan")
        guard let policy = try OperatorLog.policyInForce(store: global.store, repositoryTrust: global.trust, policy: nil) else {
            throw CommandFailure(status: ExitStatus.error, message: "no trust policy to check \(file)'s signature with: pin one (`stet trust pin`)")
        }
        do {
            return try PlanFile.read(data, source: file, trust: AuditTrust(policy.keys(in: .operator).map { (name: $0.name, publicKey: $0.publicKey) }))
        } catch let refused as PlanFile.Refused {
            OperatorSession.recordEarlyRefusal(
                global: global, key: key, action: "apply", reason: "saved plan \(file) was refused", error: refused.message)
            throw refused
        }
    }

    /// Asks on the terminal; anything but "yes", or no terminal, is recorded and ends the
    /// command with nothing accepted and nothing applied.
    private func approve(_ plan: Plan, release: ReleaseRef, session: OperatorSession) throws {
        let what = "plan \(plan.id) for release version \(release.version)"
        guard isatty(0) == 1 else {
            try session.refused(action: "apply", reason: "\(what) was not approved", error: "not on a terminal and no --auto-approve")
            throw CommandFailure(status: ExitStatus.error, message: "not on a terminal: pass --auto-approve to apply without asking")
        }
        Terminal.standardOutput.write("Apply these \(plan.changes.count) changes? Only 'yes' applies: ")
        guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
            try session.refused(action: "apply", reason: "\(what) was declined", error: "declined at the prompt")
            throw CommandFailure(status: ExitStatus.error, message: "not applied")
        }
    }

    private func report(_ result: Applier.Report, plan: Plan) {
        let out = Terminal.standardOutput
        if global.json {
            struct Line: Encodable {
                var change: String
                var ok: Bool
                var detail: String
                var error: String?
                var seconds: Double
            }
            out.json([
                "plan": AnyEncodable(plan.id),
                "results": AnyEncodable(result.results.map { Line(change: $0.change.id, ok: $0.outcome.ok, detail: $0.outcome.detail, error: $0.outcome.error, seconds: $0.seconds) }),
                "skipped": AnyEncodable(result.skipped.map(\.id)),
            ])
        } else {
            for skipped in result.skipped { out.line("\(out.yellow("skipped"))  \(skipped.id)  (an earlier change of \(skipped.resource) failed)") }
            let failed = result.results.filter { !$0.outcome.ok }.count
            out.line("Applied \(result.results.count - failed) of \(plan.changes.count) changes" + (failed > 0 ? ", \(failed) failed." : "."))
        }
    }
}
