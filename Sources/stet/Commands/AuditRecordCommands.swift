import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetState

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
