import Foundation
import StetAudit
import StetCrypto
import StetTesting

/// `stet-bench cosign [ENTRIES] [STEP]`: what a witness spends per checkpoint per peer —
/// `Witness.witness`: the peer's signature, the consistency proof from the size it last
/// cosigned, and its cosignature — on a peer's log of ENTRIES entries (default 100,000) that grows
/// by STEP (default 100) between checkpoints, beside one Ed25519 verify and one sign of the same
/// message through the same libcrypto, measured in the same run.
///
/// Target: under 5 ms per checkpoint per peer.
enum CosignBenchmark {
    static func run(_ arguments: [String]) throws {
        let entries = arguments.first.flatMap(Int.init) ?? 100_000
        let step = arguments.dropFirst().first.flatMap(Int.init) ?? 100
        guard entries > 0, step > 0 else { throw TestFailure("usage: stet-bench cosign [ENTRIES>0] [STEP>0]") }
        let checkpoints = 20
        let rounds = 50
        let nodeKey = try PrivateKey.generate()
        let witnessKey = try PrivateKey.generate()
        let trust = AuditTrust([(name: "node-a", publicKey: nodeKey.publicKey)])
        let origin = "stet/node-a"
        let verifier = try NoteVerifier(name: origin, publicKey: nodeKey.publicKey)
        print("witnessing a peer's log of \(entries) entries growing by \(step), state on \(NSTemporaryDirectory())")
        print()

        // The peer's log, then `checkpoints` more checkpoints `step` entries apart, each published
        // with the proof from the one before (what its witnesses last cosigned).
        let state = TemporaryDirectory("stet-bench-cosign")
        let log = try AuditLog(
            stateDirectory: state.path, trust: trust, key: nodeKey, host: "node-a", via: "daemon", release: .none, origin: origin)
        func grow(by count: Int) throws {
            var left = count
            while left > 0 {
                let group = min(left, 4096)
                let first = log.size
                try log.append((first..<first + group).map { index in
                    AuditRecord(
                        kind: .result, release: .none, resource: "service/web-\(index % 20)", action: "start-replica",
                        reason: "replica \(index % 3) of 3 is missing", outcome: .ok, durationMs: 41)
                })
                left -= group
            }
        }
        try grow(by: entries)
        var published: [PublishedCheckpoint] = []
        var publishing = 0.0
        for index in 0...checkpoints {
            if index > 0 { try grow(by: step) }
            let note = try log.checkpoint()
            let sizes: Set<Int> = index > 0 ? [log.size - step] : []
            let seconds = try Measure.seconds {
                published.append(try PublishedCheckpoint.make(stateDirectory: state.path, note: note, provingFrom: sizes, trust: nil))
            }
            // The first has no size to prove from and reads nothing.
            if index > 0 { publishing += seconds }
        }
        try log.close()
        let proofLength = published.last?.proofs.values.first?.count ?? 0

        // Each round: a fresh witness takes the first checkpoint on first use (not timed), then
        // witnesses the others one by one.
        var total = 0.0
        var worst = 0.0
        for _ in 0..<rounds {
            var witness = Witness()
            func witnessed(_ checkpoint: PublishedCheckpoint) throws {
                let verdict = witness.witness(
                    peer: "node-a", published: checkpoint, peerVerifier: verifier, name: "node-b", key: witnessKey, now: Date())
                guard case .cosigned = verdict else { throw TestFailure("the benchmark's checkpoints must be cosigned: \(verdict)") }
            }
            try witnessed(published[0])
            for checkpoint in published.dropFirst() {
                let seconds = try Measure.seconds { try witnessed(checkpoint) }
                total += seconds
                worst = max(worst, seconds)
            }
        }
        let perCheckpoint = total / Double(rounds * checkpoints)

        // The reference: one verify and one sign of a cosignature's message, same libcrypto.
        let text = try SignedNote(parsing: published[checkpoints].note).text
        let message = Cosignature.message(text: text, timestamp: 1_800_000_000)
        let signature = try nodeKey.signature(for: message)
        let repeats = 2_000
        var valid = true
        let reference = try Measure.seconds {
            for _ in 0..<repeats {
                valid = valid && nodeKey.publicKey.isValidSignature(signature, for: message)
                _ = try witnessKey.signature(for: message)
            }
        } / Double(repeats)
        guard valid else { throw TestFailure("the reference signature must verify") }

        Measure.row("figure", "Stet", "reference", "ratio / target")
        Measure.row("witness one checkpoint (+\(step) entries)", String(format: "%.3f ms", perCheckpoint * 1e3),
                    String(format: "%.3f ms", reference * 1e3), String(format: "%.2f × 1 verify + 1 sign", perCheckpoint / reference))
        Measure.row("  worst of \(rounds * checkpoints)", String(format: "%.3f ms", worst * 1e3), "target 5 ms",
                    String(format: "%.3f of target", perCheckpoint / 0.005))
        Measure.row("  proof from the last size", "\(proofLength) hashes")
        Measure.row("publish one checkpoint (scans \(entries / 1000)k+)", String(format: "%.0f ms", publishing / Double(checkpoints) * 1e3),
                    "", "the peer's side, once per checkpoint")
    }
}
