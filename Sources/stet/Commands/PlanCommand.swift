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
struct PlanningOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Manifest directory.", valueName: "dir"))
    var manifests = "manifests"

    @Flag(help: "Plan the removal of resources the release no longer declares (never of protected ones).")
    var prune = false

    @Option(help: ArgumentHelp("Take the release from git: git:URL_OR_PATH (fetched into the state directory).", valueName: "git:url"))
    var source: String?

    @Option(help: ArgumentHelp("With --source: the branch, tag or commit to use (default: --branch).", valueName: "ref"))
    var ref: String?

    @Option(help: ArgumentHelp("With --source: the branch to follow.", valueName: "branch"))
    var branch = "main"

    @Option(help: ArgumentHelp("With --source: the manifest directory inside the repository.", valueName: "path"))
    var path = "manifests"

    func validate() throws {
        if let source, !source.hasPrefix("git:") { throw ValidationError("--source \(source): expected git:URL_OR_PATH") }
    }

    /// The git source, when --source names one; a URL, ref or branch that Stet does not hand to
    /// git, or a path that leaves the repository, is an error (exit 1) before anything runs.
    func gitSource(_ store: FileStateStore) throws -> GitSource? {
        guard let source else { return nil }
        do {
            return try GitSource(source, ref: ref, branch: branch, path: path, store: store)
        } catch {
            throw CommandFailure(status: ExitStatus.error, message: error.description)
        }
    }

    /// The release gate for the manifests (fetched and unpacked first with --source), and the
    /// commit they came from.
    func gate(_ global: GlobalOptions) throws -> (ReleaseGate, commit: String?) {
        try gate(global, source: try gitSource(global.store))
    }

    func gate(_ global: GlobalOptions, source: GitSource?) throws -> (ReleaseGate, commit: String?) {
        guard let source else {
            return (ReleaseGate(manifests: manifests, trustFile: global.trust, store: global.store), nil)
        }
        do {
            let commit = try source.fetch()
            try source.checkout(commit)
            return (source.gate(), commit)
        } catch let failure as GitSource.Failure {
            throw CommandFailure(status: ExitStatus.error, message: "git source: \(failure)")
        }
    }
}

enum PlanOutput {
    /// Without a running `stet run`, monitors are not probed on schedule: probe each once now and
    /// say so.
    static func probeOnce(_ desired: DesiredState, store: FileStateStore, provider: HostProvider) async {
        guard !desired.monitors.isEmpty, !StateLock.isHeld(store: store, name: "run.lock") else { return }
        let out = Terminal.standardOutput
        out.line(out.yellow("No `stet run` is running here: monitors are not probed on a schedule and alert no one.")
            + " Probed once now:")
        let probes = ProbeRunner(replicas: provider.replicas, backups: provider.backups)
        for name in desired.monitors.keys.sorted() {
            let result = await probes.probe(desired.monitors[name]!, desired: desired)
            out.line("  Monitor/\(name)  " + (result.ok ? out.green("ok") : out.red("failing")) + "  \(result.detail) (\(result.durationMs) ms)")
        }
    }

    static func text(_ plan: Plan) -> String {
        var renderer = PlanText()
        let out = Terminal.standardOutput
        renderer.paint = { text, colour in
            switch colour {
            case .green: out.green(text)
            case .yellow: out.yellow(text)
            case .red: out.red(text)
            case .dim: out.dim(text)
            }
        }
        return renderer.render(plan)
    }

    /// What to say about the release planned against (`PlanningRelease`).
    static func notes(_ chosen: PlanningRelease) -> [String] {
        var notes: [String] = []
        if let notTaken = chosen.notTaken {
            notes.append("Not planned against: \(notTaken).")
        }
        switch chosen.basis {
        case .inForce:
            if chosen.notTaken != nil { notes.append("Planned against release version \(chosen.release.version), in force.") }
        case .candidate(let inForce):
            notes.append("Planned against release version \(chosen.release.version), not accepted yet ("
                + (inForce.map { "version \($0.version) is in force" } ?? "no release is in force") + "); `stet apply` accepts it.")
        }
        return notes
    }

    /// `--detailed-exitcode`: 0 nothing to do, 2 only config or schedule changes, 3 drift.
    static func detailedStatus(_ plan: Plan) -> Int32 {
        plan.changes.isEmpty ? ExitStatus.ok : plan.hasDrift ? ExitStatus.drift : ExitStatus.changes
    }
}

struct PlanCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Show what Stet would change to make the host match the verified release.",
        discussion: """
            Verifies the release (read-only), observes every replica (pid, start time, spec, health) \
            and prints the ordered changes, each with its cause (config: the release changed; drift: \
            the world moved) and reason. Changes nothing. --out saves the plan signed by an operator \
            key, for `stet apply FILE`.

            Which release: the manifests' release when it verifies and is not the one in force \
            (what `stet apply` would accept; said above the plan); otherwise the release in force, \
            kept in the state directory. Manifests changed without signing, or an older release \
            (after a `git reset`), do not fail the plan: it is made against the release in force, \
            and says why the manifests' release was not taken.

            EXIT STATUS
              0   no changes (or, without --detailed-exitcode, any plan)
              1   error
              2   with --detailed-exitcode: only config or schedule changes pending
              3   with --detailed-exitcode: drift pending (with or without others)
              10  the release or the trust policy was refused
            """
    )

    @OptionGroup var planning: PlanningOptions

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Save the plan, signed with the operator key, to FILE.", valueName: "file"))
    var out: String?

    @OptionGroup var key: KeyOption

    @Flag(help: "Exit 2 when config or schedule changes are pending, 3 when drift is.")
    var detailedExitcode = false

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, markdown
    }

    @Option(help: ArgumentHelp("text, json (as --json) or markdown (a pull request comment).", valueName: "format"))
    var format: Format = .text

    func run() async throws {
        let (gate, _) = try planning.gate(global)
        let chosen = try PlanningRelease.choose(gate, now: Date())
        let provider = HostProvider(store: global.store)
        let observed = try await provider.observe(chosen.desired, now: Date())
        let plan = Planner(prune: planning.prune).plan(desired: chosen.desired, observed: observed, release: chosen.release, now: Date())
        let notes = PlanOutput.notes(chosen)
        if let out {
            let privateKey = try PrivateKey(contentsOfFile: try key.path())
            let session = try OperatorSession(global: global, key: privateKey, policy: nil)
            try session.log.append(AuditRecord(
                kind: .result, release: AuditContext.acceptedRelease(global.store), plan: plan.id, action: "save-plan",
                reason: "plan of \(plan.changes.count) changes for release version \(plan.release.version) saved to \(out)",
                outcome: .ok))
            try AtomicFile.write(try PlanFile.sign(plan, with: privateKey), to: out, mode: 0o644)
            try session.close()
        }
        if global.json || format == .json {
            // The plan's JSON is a contract: the notes go to standard error.
            for note in notes { Terminal.standardError.line(note) }
            Terminal.standardOutput.json(data: try PlanFile.json(plan, pretty: true))
        } else if format == .markdown {
            Terminal.standardOutput.write(PlanMarkdown.render(plan))
            // A pull request comment is about the release in the pull request: only a refusal is news.
            if let notTaken = chosen.notTaken { Terminal.standardOutput.line("> Not planned against: " + PlanMarkdown.cell(notTaken)) }
        } else {
            for note in notes { Terminal.standardOutput.line(note) }
            Terminal.standardOutput.write(PlanOutput.text(plan))
            if let out { Terminal.standardOutput.line("Saved to \(out) (signed); apply it with `stet apply \(out)`.") }
            await PlanOutput.probeOnce(chosen.desired, store: global.store, provider: provider)
        }
        if detailedExitcode, plan.changes.count > 0 {
            throw CommandFailure(status: PlanOutput.detailedStatus(plan), message: nil)
        }
    }
}

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

/// Wraps any encodable value, for JSON objects of mixed values.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

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
        let plan = Planner(prune: true).plan(
            desired: DesiredState(), observed: observed, release: accepted,
            now: Date())
        let out = Terminal.standardOutput
        out.write(PlanOutput.text(plan))
        let result = try await Applier(provider: provider, audit: session.log, store: global.store, release: accepted)
            .apply(plan, desired: DesiredState()) { result in
                out.line("\(result.outcome.ok ? out.green("ok") : out.red("failed"))  \(result.change.id)  \(result.outcome.ok ? result.outcome.detail : result.outcome.error ?? "")")
            }
        if result.failed { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }
}
