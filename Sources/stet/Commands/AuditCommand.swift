import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetState

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Read, verify and prove the signed audit log.",
        discussion: """
            Every decision and action is one line of STATE/audit/log.jsonl: a DSSE envelope signed by \
            the acting operator key, chained to the entry before and covered by an RFC 6962 Merkle \
            tree. Checkpoints (C2SP signed notes) kept off the host prove later that history was not \
            rewritten.
            """,
        subcommands: [
            AuditListCommand.self, AuditShowCommand.self, AuditVerifyCommand.self, AuditCheckpointCommand.self,
            AuditProveCommand.self, AuditRecordCommand.self,
        ]
    )

    static func logPath(_ global: GlobalOptions) -> String {
        (AuditLog.directory(in: global.store.root) as NSString).appendingPathComponent(AuditLog.logName)
    }

    /// Scans the log with `trust` (nil: without checking signatures), handing each entry to
    /// `visit`. A line that fails ends the scan with a refusal naming it.
    /// The log's reader; a log that fails a check where the reader got to is refused (exit 10)
    /// after what was read before it.
    static func read(_ global: GlobalOptions, trust: AuditTrust?, _ body: (AuditReader) throws -> Void) throws {
        do {
            try body(AuditReader(store: global.store, trust: trust))
        } catch let damaged as AuditReader.Damaged {
            throw CommandFailure(status: ExitStatus.refused, message: "\(damaged); run `stet audit verify`")
        }
    }

    /// The log's trust, warning when nothing is pinned.
    static func trust(_ global: GlobalOptions) throws -> AuditTrust {
        let (trust, pinned) = try AuditContext.trust(global: global)
        if !pinned {
            Terminal.standardError.warning(
                "no trust policy is pinned in \(global.store.root); checking against the operator keys of \(global.trust)")
        }
        return trust
    }

    /// One entry as a text row.
    static func row(_ entry: AuditEntry, _ out: Terminal) -> String {
        let kind = entry.kind.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
        let coloured = switch entry.kind {
        case .refusal, .alert: out.red(kind)
        case .recovery, .drift, .window: out.yellow(kind)
        default: kind
        }
        var parts = ["\(String(entry.seq).leftPadded(6))  \(entry.time)  \(coloured)  \(entry.actor.name)"]
        if let resource = entry.resource { parts.append(resource) }
        if let action = entry.action { parts.append(action) }
        if let outcome = entry.outcome { parts.append(outcome == .ok ? out.green(outcome.rawValue) : out.red(outcome.rawValue)) }
        if let reason = entry.reason { parts.append(out.dim("— " + reason)) }
        if let error = entry.error { parts.append(out.red("error: ") + error) }
        return parts.joined(separator: "  ")
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

struct AuditListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List audit entries, oldest first.",
        discussion: """
            Reads the log and checks its chain, not its signatures: `stet audit verify` checks those. \
            With --json, prints one entry a line (the signed payload, as JSON) for tools like jq.

            With --cluster: each node's log stays on its host, signed by its node key; this lists \
            where each lives (host and state directory) and how many entries it had at the node's \
            last published status. Run `stet audit list` on that host to read it.

            EXIT STATUS
              0   listed
              1   with --cluster: etcd is unreachable
              10  a line fails its check (entries before it are listed)
            """
    )

    @OptionGroup var global: GlobalOptions

    @OptionGroup var fleet: ClusterOptions

    @Option(help: ArgumentHelp("Only entries since a duration ago (30m, 2h, 7d) or an RFC 3339 time.", valueName: "when"))
    var since: String?

    @Option(help: ArgumentHelp("Only entries about this resource (kind/name, e.g. service/web).", valueName: "resource"))
    var resource: String?

    @Option(help: ArgumentHelp("Only entries of this kind: \(AuditEntry.Kind.allCases.map(\.rawValue).joined(separator: ", ")).", valueName: "kind"))
    var kind: String?

    func validate() throws {
        if let kind, AuditEntry.Kind(rawValue: kind) == nil {
            throw ValidationError("--kind \(kind): expected one of \(AuditEntry.Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let since, Self.sinceDate(since, now: Date()) == nil {
            throw ValidationError("--since \(since): expected a duration such as 30m, 2h or 7d, or an RFC 3339 time")
        }
    }

    static func sinceDate(_ text: String, now: Date) -> Date? {
        if let duration = StetDuration(parsing: text) { return now.addingTimeInterval(-duration.seconds) }
        return RFC3339.parse(text)
    }

    func run() async throws {
        if fleet.cluster != nil {
            let view = try await FleetCommands.read(fleet, global)
            FleetCommands.printAuditLogs(view, json: global.json)
            if !view.reachable { throw CommandFailure(status: ExitStatus.error, message: "cluster \(view.cluster): etcd is unreachable") }
            return
        }
        let cutoff = since.flatMap { Self.sinceDate($0, now: Date()) }
        let wanted = kind.flatMap(AuditEntry.Kind.init(rawValue:))
        let out = Terminal.standardOutput
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let filter = AuditReader.Filter(kind: wanted, resource: resource, since: cutoff)
        var shown = 0
        try AuditCommand.read(global, trust: nil) { reader in
            try reader.entries(filter) { entry in
                if global.json {
                    out.json(data: try encoder.encode(entry))
                } else {
                    out.line(AuditCommand.row(entry, out))
                }
                shown += 1
            }
        }
        if !global.json && shown == 0 { Terminal.standardError.line("no entries") }
    }
}

struct AuditShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show one audit entry in full, with who signed it.",
        discussion: """
            Checks every line up to the entry, signatures included.

            EXIT STATUS
              0   shown
              1   no entry with that number
              10  a line up to it fails its check
            """
    )

    @Argument(help: "The entry's seq (0-based).")
    var seq: Int

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let trust = try AuditCommand.trust(global)
        var found: AuditScanner.Line?
        try AuditCommand.read(global, trust: trust) { found = try $0.line(seq: seq) }
        guard let found else {
            throw CommandFailure(status: ExitStatus.error, message: "no audit entry \(seq) in \(AuditCommand.logPath(global))")
        }
        struct Shown: Encodable {
            var entry: AuditEntry
            var line: Int
            var leafHash: String
            var signedBy: String
        }
        let signer = trust.key(id: found.entry.actor.keyid)?.name ?? found.entry.actor.name
        let shown = Shown(entry: found.entry, line: found.number, leafHash: found.leafHash.hexString, signedBy: signer)
        let out = Terminal.standardOutput
        if global.json {
            out.json(shown)
            return
        }
        let entry = found.entry
        out.line("entry      \(entry.seq) (line \(found.number) of \(AuditCommand.logPath(global)))")
        out.line("time       \(entry.time)")
        out.line("kind       \(entry.kind.rawValue)")
        out.line("actor      \(entry.actor.name) on \(entry.actor.host) via \(entry.actor.via)")
        out.line("signed by  \(signer) (\(entry.actor.keyid)): " + out.green("valid"))
        out.line("release    " + (entry.release.version == 0 ? "none accepted" : "version \(entry.release.version) \(entry.release.digest)")
            + (entry.release.commit.map { " commit \($0)" } ?? ""))
        let optional: [(String, String?)] = [
            ("plan", entry.plan), ("change", entry.change), ("resource", entry.resource), ("action", entry.action),
            ("cause", entry.cause), ("reason", entry.reason), ("outcome", entry.outcome?.rawValue), ("error", entry.error),
            ("duration", entry.durationMs.map { "\($0) ms" }),
        ]
        for (name, value) in optional {
            if let value { out.line(name.padding(toLength: 11, withPad: " ", startingAt: 0) + value) }
        }
        out.line("prev       \(entry.prev.isEmpty ? "(first entry)" : entry.prev)")
        out.line("leaf hash  \(found.leafHash.hexString)")
    }
}
