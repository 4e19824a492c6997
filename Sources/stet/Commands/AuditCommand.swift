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
        case .recovery, .drift: out.yellow(kind)
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

struct AuditListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List audit entries, oldest first.",
        discussion: """
            Reads the log and checks its chain, not its signatures: `stet audit verify` checks those. \
            With --json, prints one entry a line (the signed payload, as JSON) for tools like jq.

            EXIT STATUS
              0   listed
              10  a line fails its check (entries before it are listed)
            """
    )

    @OptionGroup var global: GlobalOptions

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

    func run() throws {
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

struct AuditVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify the whole audit log, or an inclusion proof.",
        discussion: """
            Checks every line: Stet's envelope form, the signature by an operator key of the trust \
            policy (the pinned one and those pinned before it), seq, the chain of prev hashes; then \
            computes the Merkle root, and checks that the log still holds each --checkpoint's tree. \
            --checkpoints DIR checks every signed note of a directory, oldest (smallest) to newest: \
            checkpoints that all hold for this log hold for each other too. Other files there (a \
            README) are passed over and listed as skipped. With --proof, checks only that proof, \
            offline: no log is needed.

            The log's signed head (audit/head.json) and its local checkpoint are promises: a log with \
            fewer entries than either, or none while either is there, was cut. A head or checkpoint \
            that is not signed by an operator key fails too.

            A log that Stet restarted after damage (a line that failed a check) is checked across \
            every restart: the damaged files kept in audit/damaged/ up to their last good entry, and \
            the chain from there. The damage is reported ("log starts after damage at TIME; earlier \
            entries in FILE") and the exit status is 10, even when everything since verifies.

            EXIT STATUS
              0   everything holds
              1   a state file or folder is a link or writable by others (the error names it)
              10  a line, the head, a checkpoint or the proof fails (the first bad line is named), or \
            the log was restarted after damage
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("checkpoint"), help: ArgumentHelp("A checkpoint taken earlier (repeatable).", valueName: "file"))
    var checkpoints: [String] = []

    @Option(name: .customLong("checkpoints"), help: ArgumentHelp("A directory of checkpoints (e.g. one kept in git by CI, one per host); every signed note in it is checked.", valueName: "dir"))
    var checkpointsDir: String?

    @Option(help: ArgumentHelp("An inclusion proof from `stet audit prove`.", valueName: "file"))
    var proof: String?

    func run() throws {
        let trust = try AuditCommand.trust(global)
        let out = Terminal.standardOutput
        if let proof {
            try verifyProof(proof, trust: trust)
            return
        }
        var notes: [(source: String, note: String)] = []
        for file in checkpoints {
            let data = try readInput(file, limit: InputFile.Limit.note, what: "checkpoint")
            notes.append((file, String(decoding: data, as: UTF8.self)))
        }
        // A directory kept in git holds other files too (a README, .gitkeep): only signed notes
        // are checkpoints to check; every other file is passed over and said so.
        var skipped: [(file: String, why: String)] = []
        if let checkpointsDir {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: checkpointsDir) else {
                throw CommandFailure(status: ExitStatus.error, message: "cannot read the checkpoint directory \(checkpointsDir)")
            }
            for name in names.filter({ !$0.hasPrefix(".") }).sorted() {
                let file = (checkpointsDir as NSString).appendingPathComponent(name)
                do {
                    guard let data = try InputFile.read(file, limit: InputFile.Limit.note) else { continue }
                    let text = String(decoding: data, as: UTF8.self)
                    guard SignedNote.looksSigned(text) else {
                        skipped.append((file, "not a signed note"))
                        continue
                    }
                    notes.append((file, text))
                } catch {
                    skipped.append((file, error.message))
                }
            }
        }
        let report = try AuditVerification(trust: trust).verify(stateDirectory: global.store.root, checkpoints: notes)
        if global.json {
            struct JSONReport: Encodable {
                var log: String
                var entries: Int
                var root: String
                var passed: Bool
                var failure: Failure?
                var head: AuditVerification.CheckpointResult?
                var localCheckpoint: AuditVerification.CheckpointResult?
                var checkpoints: [AuditVerification.CheckpointResult]
                var skipped: [Skipped]
                struct Skipped: Encodable {
                    var file: String
                    var reason: String
                }
                var restarts: [Restart]
                struct Restart: Encodable {
                    var time: String
                    var seq: Int
                    var damaged: String
                    var reason: String
                }
                struct Failure: Encodable {
                    var line: Int
                    var check: String
                    var message: String
                }
            }
            let failure = report.failure.map { JSONReport.Failure(line: $0.line, check: $0.check.rawValue, message: $0.message) }
                ?? (report.tornBytes > 0
                    ? JSONReport.Failure(line: report.size + 1, check: AuditFailure.Check.torn.rawValue, message: tornMessage(report)) : nil)
            out.json(JSONReport(
                log: report.path, entries: report.size, root: report.root.base64EncodedString(), passed: report.passed,
                failure: failure, head: report.head, localCheckpoint: report.localCheckpoint, checkpoints: report.checkpoints,
                skipped: skipped.map { JSONReport.Skipped(file: $0.file, reason: $0.why) },
                restarts: report.restarts.map {
                    JSONReport.Restart(time: $0.entry.time, seq: $0.entry.seq, damaged: $0.damagedPath, reason: $0.entry.reason ?? "")
                }))
        } else {
            out.line("log          \(report.path)")
            out.line("entries      \(report.size) " + (report.failure == nil ? "checked: signatures, seq, chain" : "checked before the failure"))
            out.line("root         \(report.root.base64EncodedString())")
            if let failure = report.failure {
                out.line("result       " + out.red("line \(failure.line) fails") + ": \(failure.check.rawValue): \(failure.message)")
            } else if report.tornBytes > 0 {
                out.line("result       " + out.yellow("torn write") + ": \(tornMessage(report))")
            }
            func row(_ label: String, _ checkpoint: AuditVerification.CheckpointResult) {
                let status = checkpoint.consistent ? out.green("consistent") : out.red("inconsistent")
                out.line(label.padding(toLength: 13, withPad: " ", startingAt: 0) + "\(checkpoint.source): \(status)"
                    + (checkpoint.size.map { " (size \($0)" + (checkpoint.signer.map { ", signed by \($0))" } ?? ")") } ?? "")
                    + ": \(checkpoint.message)")
            }
            for restart in report.restarts {
                out.line("damage       " + out.yellow("log starts after damage at \(restart.entry.time)")
                    + "; earlier entries in \(restart.damagedPath) (entries before \(restart.entry.seq) checked there)")
            }
            if let head = report.head { row("head", head) }
            if let local = report.localCheckpoint { row("checkpoint", local) }
            for checkpoint in report.checkpoints.sorted(by: { ($0.size ?? -1) < ($1.size ?? -1) }) { row("checkpoint", checkpoint) }
            for (file, why) in skipped { out.line("skipped      \(file): \(why)") }
            if report.passed {
                out.line("result       " + out.green("verified"))
            } else if report.failure == nil, let broken = report.promises.first(where: { !$0.consistent }) {
                out.line("result       " + out.red("cut or rewritten") + ": \(broken.message)")
            } else if report.failure == nil, report.tornBytes == 0, let last = report.restarts.last {
                out.line("result       " + out.red("damaged") + ": the log since \(last.entry.time) verifies and continues the chain; "
                    + "the damage is kept in \(last.damagedPath)")
            }
        }
        guard report.passed else {
            let first = report.failure.map { "line \($0.line) fails its \($0.check.rawValue) check" }
                ?? report.promises.first { !$0.consistent }?.message
                ?? report.restarts.last.map { "the log starts after damage at \($0.entry.time); earlier entries in \($0.damagedPath)" }
                ?? (report.tornBytes > 0 ? "line \(report.size + 1) is a torn write"
                    : "checkpoint \(report.checkpoints.first { !$0.consistent }?.source ?? "") is not consistent with the log")
            throw CommandFailure(status: ExitStatus.refused, message: "audit log verification failed: \(first)")
        }
    }

    private func tornMessage(_ report: AuditVerification.Report) -> String {
        "the last \(report.tornBytes) bytes lack a final newline (a write cut short by a crash); the next writer cuts "
            + "them off into \(AuditLog.brokenName) and records a recovery entry"
    }

    private func verifyProof(_ file: String, trust: AuditTrust) throws {
        let data = try readInput(file, limit: InputFile.Limit.note, what: "proof")
        let proof: AuditProof
        do {
            proof = try JSONDecoder().decode(AuditProof.self, from: data)
        } catch {
            throw AuditError(.invalid, "\(file): not a Stet audit proof (JSON with format \(AuditProof.format))")
        }
        let (checkpoint, entry) = try proof.verify(trust: trust, source: file)
        let out = Terminal.standardOutput
        if global.json {
            out.json(["proof": file, "seq": String(entry.seq), "origin": checkpoint.origin, "treeSize": String(checkpoint.size), "verified": "true"])
        } else {
            out.line("proof        \(file)")
            out.line("entry        \(AuditCommand.row(entry, out))")
            out.line("checkpoint   \(checkpoint.origin), size \(checkpoint.size), root \(checkpoint.root.base64EncodedString())")
            out.line("result       " + out.green("verified") + ": entry \(entry.seq) is in the signed tree")
        }
    }
}

struct AuditCheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint",
        abstract: "Sign and print a checkpoint of the audit log (C2SP tlog-checkpoint).",
        discussion: """
            Checks the log, then prints its origin, size and root hash as a signed note, signed under \
            the origin's name by the operator key. Store it off this host (git, CI artifacts): \
            `stet audit verify --checkpoint FILE` later proves the log still holds that tree. Other \
            tools verify it with the key's verifier string (`stet keys verifier`).

            EXIT STATUS
              0   printed (and stored as STATE/audit/checkpoint)
              1   a state file or folder is a link or writable by others (the error names it)
              10  the log fails verification (a bad line, or fewer entries than its signed head or \
            local checkpoint count), or the key is not an operator key
              11  another stet process holds the log
            """
    )

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @Option(help: ArgumentHelp("Origin line and signer name (default: stet/<hostname>).", valueName: "name"))
    var origin: String?

    @Option(help: ArgumentHelp("Also write the checkpoint to this file.", valueName: "file"))
    var out: String?

    func validate() throws {
        if let origin, !NoteVerifier.isValidName(origin) {
            throw ValidationError("--origin \"\(origin)\": expected text without spaces or '+'")
        }
    }

    func run() throws {
        let session = try OperatorSession(global: global, key: try PrivateKey(contentsOfFile: try key.path()), policy: nil)
        let note = try session.log.checkpoint(origin: origin ?? Checkpoint.defaultOrigin)
        try session.close()
        if let out { try AtomicFile.write(Data(note.rendered.utf8), to: out, mode: 0o644) }
        if global.json {
            let checkpoint = try Checkpoint(text: note.text)
            Terminal.standardOutput.json([
                "origin": checkpoint.origin, "size": String(checkpoint.size), "root": checkpoint.root.base64EncodedString(),
                "note": note.rendered,
            ])
        } else {
            Terminal.standardOutput.write(note.rendered)
        }
    }
}

struct AuditProveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prove",
        abstract: "Print an inclusion proof of one entry in the current checkpoint.",
        discussion: """
            The proof (JSON) holds the entry's signed line, its audit path and the checkpoint it \
            leads to: `stet audit verify --proof FILE` checks it with only the trust policy.

            EXIT STATUS
              0   printed
              10  the entry is not in the current checkpoint, or the log fails verification
            """
    )

    @Argument(help: "The entry's seq (0-based).")
    var seq: Int

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("Write the proof to this file instead of standard output.", valueName: "file"))
    var out: String?

    func run() throws {
        let proof = try AuditProof.make(stateDirectory: global.store.root, seq: seq, trust: try AuditCommand.trust(global))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(proof)
        if let out {
            try AtomicFile.write(data + Data("\n".utf8), to: out, mode: 0o644)
        } else {
            Terminal.standardOutput.json(data: data)
        }
    }
}

struct AuditRecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record an action taken by hand (or an alert or drift seen) in the audit log.",
        discussion: """
            For what people do outside Stet that the log should show beside Stet's own actions: a \
            restore by hand, a host rebooted, an incident noted. Signed by the operator key.

            EXIT STATUS
              0   recorded
              1   a state file or folder is a link or writable by others (the error names it)
              10  the log fails verification (a bad line, or fewer entries than its signed head or \
            local checkpoint count), or the key is not an operator key; nothing is appended
              11  another stet process holds the log
            """
    )

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    @Option(help: "What was done, e.g. restore-by-hand.")
    var action: String

    @Option(help: ArgumentHelp("The resource it concerns (kind/name).", valueName: "resource"))
    var resource: String?

    @Option(help: "Why, in words.")
    var reason: String?

    @Option(help: ArgumentHelp("Entry kind: result, alert or drift.", valueName: "kind"))
    var kind = "result"

    @Option(help: ArgumentHelp("ok or failed.", valueName: "outcome"))
    var outcome = "ok"

    func validate() throws {
        guard ["result", "alert", "drift"].contains(kind) else { throw ValidationError("--kind \(kind): expected result, alert or drift") }
        guard AuditEntry.Outcome(rawValue: outcome) != nil, outcome != "interrupted" else {
            throw ValidationError("--outcome \(outcome): expected ok or failed")
        }
    }

    func run() throws {
        let session = try OperatorSession(global: global, key: try PrivateKey(contentsOfFile: try key.path()), policy: nil)
        let entry = try session.log.append(AuditRecord(
            kind: AuditEntry.Kind(rawValue: kind)!, release: AuditContext.acceptedRelease(global.store), resource: resource,
            action: action, reason: reason, outcome: AuditEntry.Outcome(rawValue: outcome)))
        try session.close()
        if global.json {
            Terminal.standardOutput.json(entry)
        } else {
            Terminal.standardOutput.line("recorded entry \(entry.seq)")
        }
    }
}
