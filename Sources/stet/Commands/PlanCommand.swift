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

            --proposal DIR previews manifests nobody has signed yet (a pull request): they are \
            checked as `stet validate` does, compared field by field with the release in force, and \
            planned against the host's observed state: observed here, or read with --observed FILE \
            from a snapshot the host signed (`stet status --export FILE`). The output says it is an \
            unsigned proposal; it can never be saved (--out) or applied. In CI, where nothing is in \
            force, --base DIR names the signed release to compare with (the target branch's manifests).

            EXIT STATUS
              0   no changes (or, without --detailed-exitcode, any plan)
              1   error (a proposal that does not validate)
              2   with --detailed-exitcode: only config or schedule changes pending
              3   with --detailed-exitcode: drift pending (with or without others)
              10  the release or the trust policy was refused; with --observed, a snapshot not signed
                  by an operator key, out of form, older than --max-age or dated in the future
            """
    )

    @OptionGroup var planning: PlanningOptions

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Save the plan, signed with the operator key, to FILE.", valueName: "file"))
    var out: String?

    @OptionGroup var key: KeyOption

    @OptionGroup var fleet: ClusterOptions

    @Flag(help: "Exit 2 when config or schedule changes are pending, 3 when drift is.")
    var detailedExitcode = false

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, markdown
    }

    @Option(help: ArgumentHelp("text, json (as --json) or markdown (a pull request comment).", valueName: "format"))
    var format: Format = .text

    @Option(help: ArgumentHelp("Preview the unsigned manifests in DIR (a pull request); never saved or applied.", valueName: "dir"))
    var proposal: String?

    @Option(help: ArgumentHelp("With --proposal: compare with the signed release in DIR (the target branch's) instead of the one in force.", valueName: "dir"))
    var base: String?

    @Option(help: ArgumentHelp("With --proposal: plan against the host's signed snapshot FILE (`stet status --export`).", valueName: "file"))
    var observed: String?

    @Option(help: ArgumentHelp("With --observed: the oldest snapshot accepted, as a duration (default 1h).", valueName: "duration"))
    var maxAge: String?

    func validate() throws {
        if proposal != nil {
            if out != nil {
                throw ValidationError("--proposal cannot be saved with --out: an unsigned proposal is a preview and can never be applied")
            }
            if planning.source != nil { throw ValidationError("--proposal reads a directory; it cannot be used with --source") }
        } else if observed != nil || maxAge != nil || base != nil {
            throw ValidationError("--observed, --max-age and --base go with --proposal DIR")
        }
        if maxAge != nil, observed == nil { throw ValidationError("--max-age goes with --observed FILE") }
        if let maxAge, StetDuration(parsing: maxAge) == nil {
            throw ValidationError("--max-age \(maxAge): expected a duration such as 30m or 1h, at most \(StetDuration.maximum)")
        }
    }

    func run() async throws {
        if fleet.cluster != nil {
            guard proposal == nil, out == nil else {
                throw CommandFailure(status: ExitStatus.error, message: "--cluster plans where the fleet runs the release: not with --proposal or --out")
            }
            let (gate, _) = try planning.gate(global)
            let passed = try gate.verify(trust: try gate.resolveTrust(acting: false), now: Date())
            let view = try await FleetCommands.read(fleet, global)
            guard view.reachable else { throw CommandFailure(status: ExitStatus.error, message: "cluster \(view.cluster): etcd is unreachable: \(view.error ?? "")") }
            Terminal.standardOutput.write(FleetCommands.plan(view, desired: passed.desired, release: passed.release.release, inForce: view.release))
            return
        }
        if let proposal {
            let observation: Proposal.Observation = observed.map {
                .snapshot(file: $0, maxAge: maxAge.flatMap(StetDuration.init(parsing:)) ?? ObservedSnapshot.defaultMaxAge)
            } ?? .host
            let made = try await Proposal.make(
                directory: proposal, base: base, store: global.store, trustFile: global.trust, observation: observation, prune: planning.prune, now: Date())
            PlanOutput.print(made, format: global.json ? .json : format)
            if detailedExitcode, made.plan.changes.count > 0 {
                throw CommandFailure(status: PlanOutput.detailedStatus(made.plan), message: nil)
            }
            return
        }
        let (gate, _) = try planning.gate(global)
        let chosen = try PlanningRelease.choose(gate, now: Date())
        let provider = HostProvider(store: global.store)
        let observed = try await provider.observe(chosen.desired, now: Date())
        let plan = Planner(prune: planning.prune).plan(desired: chosen.desired, observed: observed, release: chosen.release, now: Date())
        let notes = PlanOutput.notes(chosen)
        if let out {
            let privateKey = try PrivateKey(contentsOfFile: try key.path())
            let session = try OperatorSession(global: global, key: privateKey, policy: nil)
            try PlanFile.save(plan, to: out, key: privateKey, audit: session.log, inForce: AuditContext.acceptedRelease(global.store))
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
