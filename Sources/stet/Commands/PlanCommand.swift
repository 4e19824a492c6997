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

/// Wraps any encodable value, for JSON objects of mixed values.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}
