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
        let passed = try gate.open(accept: false, now: Date())
        let provider = HostProvider(store: global.store)
        let observed = try await provider.observe(passed.desired, now: Date())
        let plan = Planner(prune: planning.prune).plan(desired: passed.desired, observed: observed, release: passed.release.release, now: Date())
        if let out {
            let privateKey = try PrivateKey(contentsOfFile: try key.path())
            let session = try OperatorSession(global: global, key: privateKey, policy: passed.trust.policy)
            try session.log.append(AuditRecord(
                kind: .result, release: AuditContext.acceptedRelease(global.store), plan: plan.id, action: "save-plan",
                reason: "plan of \(plan.changes.count) changes for release version \(plan.release.version) saved to \(out)",
                outcome: .ok))
            try AtomicFile.write(try PlanFile.sign(plan, with: privateKey), to: out, mode: 0o644)
            try session.close()
        }
        if global.json || format == .json {
            Terminal.standardOutput.json(data: try PlanFile.json(plan, pretty: true))
        } else if format == .markdown {
            Terminal.standardOutput.write(PlanMarkdown.render(plan))
        } else {
            Terminal.standardOutput.write(PlanOutput.text(plan))
            if let out { Terminal.standardOutput.line("Saved to \(out) (signed); apply it with `stet apply \(out)`.") }
            await PlanOutput.probeOnce(passed.desired, store: global.store, provider: provider)
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
            Takes the state lock, accepts the verified release (recorded in the audit log), then \
            applies each change with an intent entry before and a result entry after. Without FILE it \
            plans afresh. With FILE it applies that signed plan only if it is for the release in \
            force, was never applied before, and every change's observed facts still hold. Asks \
            for confirmation on a terminal; elsewhere needs --auto-approve.

            EXIT STATUS
              0   applied (or nothing to do)
              1   error, or a change failed (the rest of its resource was skipped)
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

    func run() async throws {
        let source = try planning.gitSource(global.store)
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let lock = try StateLock(store: global.store, timeout: global.lockTimeout)
        defer { lock.release() }
        let (gate, commit) = try planning.gate(global, source: source)
        let (session, passed) = try OperatorSession.verified(
            gate: gate, global: global, key: privateKey, action: "apply",
            directory: commit.map { "\(planning.source ?? "") at commit \($0)" } ?? planning.manifests)
        defer { try? session.close() }
        let releaseRef = passed.release.release
        let provider = HostProvider(store: global.store)
        let out = Terminal.standardOutput
        let interrupted = try Applier.recoverInterrupted(
            store: global.store, audit: session.log, release: AuditContext.acceptedRelease(global.store))
        if interrupted > 0 { out.warning("\(interrupted) action(s) of an earlier run were interrupted; recorded, and the host is observed again") }

        var plan: Plan
        if let planFile {
            plan = try await savedPlan(planFile, session: session, policy: passed.trust.policy, release: releaseRef, provider: provider, desired: passed.desired)
        } else {
            let observed = try await provider.observe(passed.desired, now: Date())
            plan = Planner(prune: planning.prune).plan(desired: passed.desired, observed: observed, release: releaseRef, now: Date())
        }
        try session.accept(passed, gate: gate, commit: commit)
        var entryRelease = releaseRef
        entryRelease.commit = commit
        if plan.changes.isEmpty {
            out.write(PlanOutput.text(plan))
            return
        }
        if !global.json { out.write(PlanOutput.text(plan)) }
        if !autoApprove {
            guard isatty(0) == 1 else {
                try session.refused(action: "apply", reason: "plan \(plan.id) was not approved", error: "not on a terminal and no --auto-approve", release: entryRelease)
                throw CommandFailure(status: ExitStatus.error, message: "not on a terminal: pass --auto-approve to apply without asking")
            }
            out.write("Apply these \(plan.changes.count) changes? Only 'yes' applies: ")
            guard readLine()?.trimmingCharacters(in: .whitespaces) == "yes" else {
                try session.refused(action: "apply", reason: "plan \(plan.id) was declined", error: "declined at the prompt", release: entryRelease)
                throw CommandFailure(status: ExitStatus.error, message: "not applied")
            }
        }
        if planFile != nil { try PlanFile.markApplied(plan, in: global.store, now: Date()) }
        let applier = Applier(provider: provider, audit: session.log, store: global.store, release: entryRelease)
        let json = global.json
        let result = try await applier.apply(plan, desired: passed.desired) { result in
            guard !json else { return }
            let mark = result.outcome.ok ? Terminal.standardOutput.green("ok") : Terminal.standardOutput.red("failed")
            Terminal.standardOutput.line("\(mark)  \(result.change.id)  \(result.outcome.ok ? result.outcome.detail : result.outcome.error ?? "")"
                + String(format: "  (%.1f s)", result.seconds))
        }
        if !json { await PlanOutput.probeOnce(passed.desired, store: global.store, provider: provider) }
        if json {
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
        if result.failed { throw CommandFailure(status: ExitStatus.error, message: nil) }
    }

    /// A saved plan that may still be applied (`PlanFile.read` and `PlanFile.admit`), or a
    /// refusal (exit 10 or 12), recorded.
    private func savedPlan(
        _ file: String, session: OperatorSession, policy: TrustPolicy, release: ReleaseRef, provider: HostProvider,
        desired: DesiredState
    ) async throws -> Plan {
        do {
            let data = try readInput(file, limit: InputFile.Limit.plan, what: "saved plan")
            let plan = try PlanFile.read(
                data, source: file, trust: AuditTrust(policy.keys(in: .operator).map { (name: $0.name, publicKey: $0.publicKey) }))
            try PlanFile.admit(plan, release: release, store: global.store, observed: try await provider.observe(desired, now: Date()))
            return plan
        } catch let refused as PlanFile.Refused {
            try session.refused(action: "apply", reason: "saved plan \(file) was refused", error: refused.message)
            throw refused
        } catch let stale as PlanFile.Stale {
            try session.refused(action: "apply", reason: "saved plan \(file) was refused", error: stale.message)
            throw stale
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
