import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetFleet
import StetManifest
import StetState

struct AuditVerifyCommand: AsyncParsableCommand {
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

            With --cluster on a fleet node: also checks the log against the newest checkpoint of it \
            that at least --witnesses other nodes cosigned (default: a majority of the other live \
            nodes), read from etcd with every cosignature verified under the pinned trust policy. A \
            node that truncated or rewrote its log fails, naming the witnesses that hold the older \
            tree.

            EXIT STATUS
              0   everything holds
              1   a state file or folder is a link or writable by others (the error names it); with \
            --cluster, etcd is unreachable or no checkpoint has enough witnesses
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

    @OptionGroup var fleet: ClusterOptions

    @Option(help: ArgumentHelp("With --cluster: the other nodes that must have cosigned the checkpoint (default: a majority of the other live nodes).", valueName: "k"))
    var witnesses: Int?

    @Option(help: ArgumentHelp("With --cluster: the node whose log this is (default: the node of this state directory).", valueName: "name"))
    var node: String?

    func validate() throws {
        if let witnesses, !(1...1000).contains(witnesses) { throw ValidationError("--witnesses \(witnesses): expected 1 to 1000") }
        if let node, !ResourceID.isValidName(node) { throw ValidationError("--node \(node.prefix(80)): expected a node name") }
        if fleet.cluster == nil, witnesses != nil || node != nil { throw ValidationError("--witnesses and --node need --cluster") }
    }

    func run() async throws {
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
        var skipped: [(file: String, reason: String)] = []
        if let checkpointsDir {
            let directory = try AuditVerification.CheckpointDirectory(checkpointsDir)
            notes += directory.notes
            skipped = directory.skipped
        }
        if fleet.cluster != nil { notes.append(try await witnessedCheckpoint()) }
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
                    ? JSONReport.Failure(line: report.size + 1, check: AuditFailure.Check.torn.rawValue, message: report.tornMessage) : nil)
            out.json(JSONReport(
                log: report.path, entries: report.size, root: report.root.base64EncodedString(), passed: report.passed,
                failure: failure, head: report.head, localCheckpoint: report.localCheckpoint, checkpoints: report.checkpoints,
                skipped: skipped.map { JSONReport.Skipped(file: $0.file, reason: $0.reason) },
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
                out.line("result       " + out.yellow("torn write") + ": \(report.tornMessage)")
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
            for (file, reason) in skipped { out.line("skipped      \(file): \(reason)") }
            if report.passed {
                out.line("result       " + out.green("verified"))
            } else if report.failure == nil, let broken = report.promises.first(where: { !$0.consistent }) {
                out.line("result       " + out.red("cut or rewritten") + ": \(broken.message)")
            } else if report.failure == nil, report.tornBytes == 0, let last = report.restarts.last {
                out.line("result       " + out.red("damaged") + ": the log since \(last.entry.time) verifies and continues the chain; "
                    + "the damage is kept in \(last.damagedPath)")
            }
        }
        if let problem = report.firstProblem {
            throw CommandFailure(status: ExitStatus.refused, message: "audit log verification failed: \(problem)")
        }
    }

    /// The newest checkpoint of this node's log that enough other nodes cosigned, as a note to
    /// check the log against, named by its witnesses.
    private func witnessedCheckpoint() async throws -> (source: String, note: String) {
        guard let name = node ?? FleetShare.load(from: global.store)?.node else {
            throw CommandFailure(status: ExitStatus.error, message: "\(global.store.root) is no fleet node's state directory: name the node with --node")
        }
        let policy = try FleetCommands.trust(global)
        let keyspace = try fleet.keyspace()
        let (values, live) = try await FleetCommands.withClient(fleet) { client in
            do {
                let cosigned = try await client.list(prefix: keyspace.cosignatures(of: name), maximumKeys: 1000).kvs.map(\.value)
                let nodes = try await client.list(prefix: keyspace.nodes, maximumKeys: 10_000).kvs.compactMap {
                    if case .node(let node) = keyspace.parse($0.key) { return node } else { return nil }
                }
                return (cosigned, nodes)
            } catch {
                throw CommandFailure(status: ExitStatus.error, message: "cluster \(keyspace.cluster): etcd is unreachable: \(error)")
            }
        }
        // Witnesses are the node keys of the policy, less the key that signs this node's checkpoints.
        var keys: [String: PublicKey] = [:]
        for entry in policy.keys(in: .node) { keys[entry.name] = entry.publicKey }
        let origin = "stet/\(keyspace.cluster)/\(name)"
        let verifiers = policy.keys(in: .node).compactMap { try? NoteVerifier(name: origin, publicKey: $0.publicKey) }
        for value in values.prefix(1000) {
            guard let note = try? SignedNote(parsing: String(decoding: value, as: UTF8.self)) else { continue }
            for signer in note.validSigners(among: verifiers) {
                if let own = keys.first(where: { $0.value == signer.publicKey })?.key { keys[own] = nil }
            }
        }
        let others = live.filter { $0 != name }.count
        let quorum = witnesses ?? (others / 2 + 1)
        let (chosen, largest) = WitnessedCheckpoint.newest(values, witnessKeys: keys, quorum: quorum)
        guard let chosen else {
            throw CommandFailure(
                status: ExitStatus.error,
                message: "no checkpoint of node \(name)'s log has \(quorum) witness\(quorum == 1 ? "" : "es") in cluster \(keyspace.cluster)"
                    + (largest.map { " (the newest has \($0.witnesses.count): \($0.witnesses.joined(separator: ", ")) at size \($0.size))" } ?? " (none is cosigned)"))
        }
        return ("the checkpoint of size \(chosen.size) witnessed by \(chosen.witnesses.joined(separator: ", "))", chosen.note)
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
