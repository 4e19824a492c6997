import Foundation
import StetAudit
import StetCrypto
import StetTesting
import Testing

/// A peer's audit log on real files, published with consistency proofs and witnessed: a log
/// that grows is cosigned at every step; one cut back, rewritten, or shown with a forged or
/// missing proof is a fork, and one signed by another key is refused; neither changes what the
/// witness holds.
@Suite struct WitnessTests {
    let nodeKey: PrivateKey
    let witnessKey: PrivateKey
    let otherWitnessKey: PrivateKey
    let stranger: PrivateKey
    let trust: AuditTrust
    let peerVerifier: NoteVerifier
    let origin = "stet/node-a"
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    init() throws {
        nodeKey = try PrivateKey.generate()
        witnessKey = try PrivateKey.generate()
        otherWitnessKey = try PrivateKey.generate()
        stranger = try PrivateKey.generate()
        trust = AuditTrust([(name: "node-a", publicKey: nodeKey.publicKey)])
        peerVerifier = try NoteVerifier(name: origin, publicKey: nodeKey.publicKey)
    }

    /// The peer: its state directory and its open audit log.
    final class Peer {
        let state = TemporaryDirectory("stet-witness")
        let key: PrivateKey
        let trust: AuditTrust
        let origin: String
        var log: AuditLog

        init(key: PrivateKey, trust: AuditTrust, origin: String) throws {
            self.key = key
            self.trust = trust
            self.origin = origin
            log = try Self.open(state.path, key: key, trust: trust, origin: origin)
        }

        static func open(_ path: String, key: PrivateKey, trust: AuditTrust, origin: String) throws -> AuditLog {
            try AuditLog(
                stateDirectory: path, trust: trust, key: key, host: "node-a", via: "daemon",
                release: .init(version: 1, digest: "sha256:abc"), origin: origin, lockTimeout: 5)
        }

        /// Appends entries until the log holds `size`; `tag` sets what they say.
        func grow(to size: Int, tag: String = "replica") throws {
            let records = (log.size..<size).map { n in
                AuditRecord(
                    kind: .result, release: .init(version: 1, digest: "sha256:abc"), resource: "service/web",
                    action: "start-replica", reason: "\(tag) \(n) was missing", outcome: .ok)
            }
            try log.append(records)
        }

        /// Its checkpoint now, with proofs from `sizes`.
        func publish(provingFrom sizes: Set<Int>) throws -> PublishedCheckpoint {
            let note = try log.checkpoint(origin: nil, now: Date())
            return try PublishedCheckpoint.make(stateDirectory: state.path, note: note, provingFrom: sizes, trust: trust)
        }

        /// A copy of the audit folder as it is now.
        func backup() throws -> TemporaryDirectory {
            let copy = TemporaryDirectory("stet-witness-backup")
            try FileManager.default.copyItem(atPath: state.path + "/audit", toPath: copy.path + "/audit")
            return copy
        }

        /// Puts `backup` back in place of the audit folder and reopens the log: the node's
        /// history is what it was when the backup was taken.
        func restore(_ backup: TemporaryDirectory) throws {
            try log.close()
            try FileManager.default.removeItem(atPath: state.path + "/audit")
            try FileManager.default.copyItem(atPath: backup.path + "/audit", toPath: state.path + "/audit")
            log = try Self.open(state.path, key: key, trust: trust, origin: origin)
        }
    }

    func makePeer() throws -> Peer { try Peer(key: nodeKey, trust: trust, origin: origin) }

    func witness(_ witness: inout Witness, _ published: PublishedCheckpoint, as name: String = "w1") -> Witness.Verdict {
        witness.witness(
            peer: "node-a", published: published, peerVerifier: peerVerifier, name: name,
            key: name == "w1" ? witnessKey : otherWitnessKey, now: now)
    }

    func cosigned(_ verdict: Witness.Verdict) -> String? {
        if case .cosigned(let note) = verdict { return note }
        return nil
    }

    func fork(_ verdict: Witness.Verdict) -> Witness.Fork? {
        if case .fork(let fork) = verdict { return fork }
        return nil
    }

    func isInvalid(_ verdict: Witness.Verdict) -> Bool {
        if case .invalid = verdict { return true }
        return false
    }

    /// Two witnesses; the second looks at every other checkpoint only, so the publisher proves
    /// from two sizes at once. The empty log, sizes at and past powers of two, and an unchanged
    /// republication are all on the way.
    @Test func aGrowingLogIsCosignedStepByStepWithProofs() throws {
        let peer = try makePeer()
        var first = Witness()
        var second = Witness()
        let keys = ["w1": witnessKey.publicKey, "w2": otherWitnessKey.publicKey]
        for (step, size) in [0, 3, 4, 8, 9, 31, 64, 100].enumerated() {
            try peer.grow(to: size)
            let sizes = Set([first, second].compactMap { $0.peers["node-a"]?.size })
            let published = try peer.publish(provingFrom: sizes)
            let proven = sizes.filter { $0 > 0 && $0 < size }
            #expect(Set(published.proofs.keys) == Set(proven.map(String.init)), "size \(size)")

            var watching: [(String, Witness)] = [("w1", first)]
            if step % 2 == 0 { watching.append(("w2", second)) }
            for (name, before) in watching {
                var state = before
                let verdict = witness(&state, published, as: name)
                let note = try #require(cosigned(verdict), "\(name) at size \(size): \(verdict)")
                #expect(state.peers["node-a"]?.size == size)
                #expect(state.peers["node-a"]?.note == note)
                #expect(Cosignature.witnesses(of: note, among: keys) == [name])
                // The peer's own signature stays, over the log's checkpoint.
                let (checkpoint, signer) = try Checkpoint.verify(note: note, trust: trust, source: "cosigned")
                #expect(signer == "node-a" && checkpoint.size == size)
                #expect(state.peers["node-a"]?.root == checkpoint.root)
                // The same note again: the cosignature already says it.
                let held = state
                #expect(witness(&state, published, as: name) == .unchanged)
                #expect(state == held)
                if name == "w1" { first = state } else { second = state }
            }
        }
        #expect(first.peers["node-a"]?.size == 100 && second.peers["node-a"]?.size == 64)
    }

    /// The cosignature on a witnessed note carries the witness's time.
    @Test func theCosignatureCarriesTheWitnessTime() throws {
        let peer = try makePeer()
        try peer.grow(to: 2)
        var state = Witness()
        let note = try #require(cosigned(witness(&state, try peer.publish(provingFrom: []))))
        let parsed = try SignedNote(parsing: note)
        let line = try #require(parsed.signatures.first { $0.name == "w1" })
        #expect(Cosignature.verify(line, text: parsed.text, name: "w1", publicKey: witnessKey.publicKey) == 1_800_000_000)
    }

    /// The node puts back its audit folder as it was at 5 entries: its checkpoint goes back to
    /// 5 (truncated); it writes 3 other entries to reach 8 again (rewritten); it goes on to 12
    /// and proves from 8 on its new history (inconsistent).
    @Test func aLogPutBackToAnOlderStateIsAFork() throws {
        let peer = try makePeer()
        var state = Witness()
        try peer.grow(to: 5)
        let backup = try peer.backup()
        #expect(cosigned(witness(&state, try peer.publish(provingFrom: []))) != nil)
        try peer.grow(to: 8)
        #expect(cosigned(witness(&state, try peer.publish(provingFrom: [5]))) != nil)
        let held = state
        let cosignedBefore = try #require(held.peers["node-a"]?.note)

        try peer.restore(backup)
        let cut = try peer.publish(provingFrom: [8])
        let truncated = try #require(fork(witness(&state, cut)))
        #expect(truncated.reason == .truncated && truncated.peer == "node-a")
        #expect(truncated.cosigned == cosignedBefore && truncated.conflicting == cut.note)
        #expect(state == held)

        try peer.grow(to: 8, tag: "rewritten")
        let rewrittenNote = try peer.publish(provingFrom: [8])
        let rewritten = try #require(fork(witness(&state, rewrittenNote)))
        #expect(rewritten.reason == .rewritten)
        #expect(rewritten.conflicting == rewrittenNote.note)
        #expect(state == held)
        // Both notes of a rewrite are signed by the peer's key: evidence without Stet's word.
        for note in [rewritten.cosigned, rewritten.conflicting] {
            #expect(try Checkpoint.verify(note: note, trust: trust, source: "fork").0.size == 8)
        }

        try peer.grow(to: 12, tag: "rewritten")
        let grown = try peer.publish(provingFrom: [8])
        #expect(grown.proofs["8"] != nil)
        let inconsistent = try #require(fork(witness(&state, grown)))
        #expect(inconsistent.reason == .inconsistent)
        #expect(state == held)

        // Only an operator's decision to let the peer go makes its new history acceptable.
        state.forget(peer: "node-a")
        #expect(cosigned(witness(&state, grown)) != nil)
        #expect(state.peers["node-a"]?.size == 12)
    }

    /// Every hash of a genuine proof with one byte changed, a hash too few or too many, another
    /// size's proof under this size, text that is not base64: each is inconsistent. The genuine
    /// proof then passes, so the forged ones failed for what was changed.
    @Test func aForgedProofIsInconsistent() throws {
        let peer = try makePeer()
        var state = Witness()
        try peer.grow(to: 5)
        #expect(cosigned(witness(&state, try peer.publish(provingFrom: []))) != nil)
        let held = state
        try peer.grow(to: 13)
        let genuine = try peer.publish(provingFrom: [4, 5])
        let hashes = try #require(genuine.proofs["5"])
        #expect(hashes.count > 1)

        var forgeries: [[String]] = []
        for index in hashes.indices {
            for byte in 0..<32 {
                var bytes = try #require(Data(base64Encoded: hashes[index]))
                bytes[byte] ^= 0x01
                var forged = hashes
                forged[index] = bytes.base64EncodedString()
                forgeries.append(forged)
            }
        }
        forgeries += [
            Array(hashes.dropLast()), hashes + [hashes[0]], [], try #require(genuine.proofs["4"]),
            [String(hashes[0].dropLast())] + hashes.dropFirst(), ["!!!!"] + hashes.dropFirst(),
            Array(repeating: hashes[0], count: 65),
        ]
        for forged in forgeries {
            var published = genuine
            published.proofs["5"] = forged
            let verdict = witness(&state, published)
            #expect(fork(verdict)?.reason == .inconsistent, "\(forged): \(verdict)")
            #expect(state == held)
        }
        #expect(cosigned(witness(&state, genuine)) != nil)
        #expect(state.peers["node-a"]?.size == 13)
    }

    @Test func aMissingProofIsInconsistent() throws {
        let peer = try makePeer()
        var state = Witness()
        try peer.grow(to: 3)
        #expect(cosigned(witness(&state, try peer.publish(provingFrom: []))) != nil)
        let held = state
        try peer.grow(to: 7)
        for sizes: Set<Int> in [[], [2], [4, 5]] {
            let verdict = witness(&state, try peer.publish(provingFrom: sizes))
            let found = try #require(fork(verdict), "proofs from \(sizes): \(verdict)")
            #expect(found.reason == .inconsistent)
            #expect(found.message.contains("size 3"))
            #expect(state == held)
        }
        #expect(cosigned(witness(&state, try peer.publish(provingFrom: [3]))) != nil)
    }

    /// A checkpoint signed by another key, under another origin, that does not parse, that is
    /// too long, or signed with the witness's own key is refused, whether or not a checkpoint
    /// was cosigned before; it is never taken on first use.
    @Test func aCheckpointNotSignedByThePeerIsRefused() throws {
        let peer = try makePeer()
        try peer.grow(to: 4)
        let genuine = try peer.publish(provingFrom: [])
        let checkpoint = try Checkpoint(text: try SignedNote(parsing: genuine.note).text)
        let byStranger = try checkpoint.signed(with: stranger).rendered
        let otherOrigin = try Checkpoint(origin: "stet/node-b", size: checkpoint.size, root: checkpoint.root).signed(with: nodeKey).rendered
        // The peer's key under the peer's name, over a checkpoint of another log.
        var otherLog = SignedNote(text: Checkpoint(origin: "stet/node-b", size: checkpoint.size, root: checkpoint.root).text)
        try otherLog.sign(name: origin, with: nodeKey)
        let refused = [
            byStranger, otherOrigin, otherLog.rendered, "garbage", genuine.note.replacingOccurrences(of: "\n4\n", with: "\nfour\n"),
            String(repeating: "x", count: Cosignature.maximumNoteBytes) + "\n" + genuine.note,
        ]

        var fresh = Witness()
        for note in refused {
            let verdict = witness(&fresh, PublishedCheckpoint(note: note))
            #expect(isInvalid(verdict), "\(verdict)")
            #expect(fresh.peers.isEmpty)
        }
        #expect(cosigned(witness(&fresh, genuine)) != nil)
        let held = fresh
        for note in refused {
            #expect(isInvalid(witness(&fresh, PublishedCheckpoint(note: note))))
            #expect(fresh == held)
        }
        // A node does not witness its own log.
        let own = try NoteVerifier(name: origin, publicKey: witnessKey.publicKey)
        let mine = try checkpoint.signed(with: witnessKey).rendered
        var selfState = Witness()
        let verdict = selfState.witness(
            peer: "node-a", published: PublishedCheckpoint(note: mine), peerVerifier: own, name: "w1", key: witnessKey, now: now)
        #expect(isInvalid(verdict) && selfState.peers.isEmpty)
    }

    /// What the caller persists reads back the same; a stored root that is not 32 bytes does not.
    @Test func theWitnessStateReadsBackFromJSON() throws {
        let peer = try makePeer()
        try peer.grow(to: 3)
        var state = Witness()
        #expect(cosigned(witness(&state, try peer.publish(provingFrom: []))) != nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let json = try encoder.encode(state)
        #expect(try JSONDecoder().decode(Witness.self, from: json) == state)
        let object = try #require(try JSONSerialization.jsonObject(with: json) as? [String: [String: [String: Any]]])
        let root = try #require(object["peers"]?["node-a"]?["root"] as? String)
        #expect(Data(base64Encoded: root) == state.peers["node-a"]?.root)

        let text = String(decoding: json, as: UTF8.self)
        let damaged = text.replacingOccurrences(of: root, with: Data(count: 31).base64EncodedString())
        #expect(damaged != text)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Witness.self, from: Data(damaged.utf8)) }
    }

    /// The published form reads back; anything past its bounds is refused with a reason.
    @Test func publishedCheckpointDecodingIsBounded() throws {
        let peer = try makePeer()
        try peer.grow(to: 9)
        let published = try peer.publish(provingFrom: [3, 4])
        let json = try JSONEncoder().encode(published)
        #expect(try PublishedCheckpoint.decode(json: json) == published)

        let hash = Data(count: 32).base64EncodedString()
        var tooMany = published
        for size in 1...65 { tooMany.proofs[String(size)] = [hash] }
        var tooLong = published
        tooLong.proofs["3"] = Array(repeating: hash, count: 65)
        var shortHash = published
        shortHash.proofs["3"] = [Data(count: 31).base64EncodedString()]
        let badSizes = ["0", "03", "-3", "+3", "3.0", "three", "99999999999999999999", ""]
        var cases = [tooMany, tooLong, shortHash, PublishedCheckpoint(note: String(repeating: "x", count: 16 << 10 + 1))]
        for size in badSizes { cases.append(PublishedCheckpoint(note: published.note, proofs: [size: [hash]])) }
        for bad in cases {
            #expect(throws: AuditError.self) { try PublishedCheckpoint.decode(json: try JSONEncoder().encode(bad)) }
        }
        let duplicate = Data(#"{"note": "a", "proofs": {}, "note": "b"}"#.utf8)
        #expect(throws: AuditError.self) { try PublishedCheckpoint.decode(json: duplicate) }
        #expect(throws: AuditError.self) { try PublishedCheckpoint.decode(json: Data(count: PublishedCheckpoint.maximumJSONBytes + 1)) }
        #expect(throws: AuditError.self) { try PublishedCheckpoint.decode(json: Data("[]".utf8)) }
    }
}
