import Foundation
import StetCore
import StetEngine
import StetPlanner
import StetProviders
import StetState

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

    /// An unsigned proposal (`stet plan --proposal`) in `format`.
    static func print(_ proposal: Proposal, format: PlanCommand.Format) {
        let out = Terminal.standardOutput
        switch format {
        case .json: out.json(proposal.json)
        case .markdown: out.write(proposal.report.markdown())
        case .text:
            out.write(proposal.report.text { text, colour in
                switch colour {
                case .green: out.green(text)
                case .yellow: out.yellow(text)
                case .red: out.red(text)
                case .dim: out.dim(text)
                }
            })
        }
    }

    /// `--detailed-exitcode`: 0 nothing to do, 2 only config or schedule changes, 3 drift.
    static func detailedStatus(_ plan: Plan) -> Int32 {
        plan.changes.isEmpty ? ExitStatus.ok : plan.hasDrift ? ExitStatus.drift : ExitStatus.changes
    }
}

/// Wraps any encodable value, for JSON objects of mixed values.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}
