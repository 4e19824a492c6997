import Foundation
import StetAudit
import StetCrypto
import StetTesting
import Testing

/// C2SP tlog-cosignature v1 (Ed25519) cosignatures: signing, verifying, and refusing every
/// malformed line without trapping. `CosignatureTests+OpenSSL` checks the format against an
/// implementation that shares no code with Stet.
@Suite struct CosignatureTests {
    let dir = TemporaryDirectory("stet-cosignature")
    let witnessKey: PrivateKey
    let nodeKey: PrivateKey
    let name = "witness.example/w1"
    /// The checkpoint of the spec's example.
    let text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    /// The time of the spec's example cosignature.
    let time = Date(timeIntervalSince1970: 1_679_315_147.75)

    init() throws {
        witnessKey = try PrivateKey.generate()
        nodeKey = try PrivateKey.generate()
    }

    /// The signature line of `signature`, as a note writes it.
    static func line(_ signature: SignedNote.Signature) -> String {
        "— \(signature.name) \((signature.keyID + signature.signature).base64EncodedString())\n"
    }

    @Test func signedCosignatureVerifiesAndCarriesItsTime() throws {
        let signature = try Cosignature.sign(text: text, name: name, key: witnessKey, time: time)
        #expect(signature.name == name)
        #expect(signature.keyID == Cosignature.keyID(name: name, publicKey: witnessKey.publicKey))
        #expect(signature.signature.count == 8 + 64)
        // The timestamp is whole seconds, rounded down.
        #expect(Cosignature.verify(signature, text: text, name: name, publicKey: witnessKey.publicKey) == 1_679_315_147)
        #expect(Cosignature.verify(line: Self.line(signature), text: text, name: name, publicKey: witnessKey.publicKey) == 1_679_315_147)

        // Another text, name or key: not this cosignature.
        #expect(Cosignature.verify(signature, text: text + "extension\n", name: name, publicKey: witnessKey.publicKey) == nil)
        #expect(Cosignature.verify(signature, text: text, name: "witness.example/w2", publicKey: witnessKey.publicKey) == nil)
        #expect(Cosignature.verify(signature, text: text, name: name, publicKey: nodeKey.publicKey) == nil)
        var renamed = signature
        renamed.name = "witness.example/w2"
        #expect(Cosignature.verify(renamed, text: text, name: "witness.example/w2", publicKey: witnessKey.publicKey) == nil)
    }

    /// The key id has type 0x04: a key's cosignature and its plain note signature (0x01) under
    /// the same name never pass for each other.
    @Test func cosignaturesAndNoteSignaturesDoNotMix() throws {
        var note = SignedNote(text: text)
        try note.sign(name: name, with: witnessKey)
        #expect(Cosignature.witnesses(of: note.rendered, among: [name: witnessKey.publicKey]).isEmpty)
        let plainKeyID = try NoteVerifier(name: name, publicKey: witnessKey.publicKey).keyID
        #expect(Cosignature.keyID(name: name, publicKey: witnessKey.publicKey) != plainKeyID)

        try note.cosign(name: name, with: witnessKey, time: time)
        #expect(Cosignature.witnesses(of: note.rendered, among: [name: witnessKey.publicKey]) == [name])
        let verifier = try NoteVerifier(name: name, publicKey: witnessKey.publicKey)
        #expect(note.validSigners(among: [verifier]).count == 1)
    }

    @Test func witnessesOfANoteAreThoseWhoseCosignatureVerifies() throws {
        let other = try PrivateKey.generate()
        let stranger = try PrivateKey.generate()
        var note = SignedNote(text: text)
        try note.sign(name: "example.com/behind-the-sofa", with: nodeKey)
        try note.cosign(name: "w1", with: witnessKey, time: time)
        try note.cosign(name: "w2", with: other, time: time)
        try note.cosign(name: "w3", with: stranger, time: time)
        // Cosigning again replaces the line of the same name and key.
        try note.cosign(name: "w1", with: witnessKey, time: time.addingTimeInterval(60))
        #expect(note.signatures.filter { $0.name == "w1" }.count == 1)
        let keys = ["w1": witnessKey.publicKey, "w2": other.publicKey, "w3": other.publicKey, "node": nodeKey.publicKey]
        #expect(Cosignature.witnesses(of: note.rendered, among: keys) == ["w1", "w2"])
        #expect(Cosignature.witnesses(of: note.rendered, among: [:]).isEmpty)

        // Over another body, none of them holds.
        let moved = SignedNote(text: "example.com/behind-the-sofa\n20852164\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
                               signatures: note.signatures)
        #expect(Cosignature.witnesses(of: moved.rendered, among: keys).isEmpty)
        #expect(Cosignature.witnesses(of: "not a note", among: keys).isEmpty)
        #expect(Cosignature.witnesses(of: String(repeating: "a", count: 20_000) + "\n" + note.rendered, among: keys).isEmpty)
    }

    /// Every way a line can be wrong gives nil; none traps. The line is short, so every byte
    /// and every cut is tried.
    @Test func malformedLinesAreRefusedWithoutTrapping() throws {
        let signature = try Cosignature.sign(text: text, name: name, key: witnessKey, time: time)
        let line = Self.line(signature)
        func verify(_ line: String) -> UInt64? { Cosignature.verify(line: line, text: text, name: name, publicKey: witnessKey.publicKey) }
        #expect(verify(line) != nil)
        #expect(verify(String(line.dropLast())) != nil)

        let bytes = Array(line.utf8)
        for cut in 0..<bytes.count - 1 {
            #expect(verify(String(decoding: bytes.prefix(cut), as: UTF8.self)) == nil, "cut at \(cut)")
        }
        for index in bytes.indices.dropLast() {
            for replacement in [UInt8(ascii: "A"), UInt8(ascii: "!"), UInt8(ascii: " "), 0x0A, 0xFF] where replacement != bytes[index] {
                var changed = bytes
                changed[index] = replacement
                #expect(verify(String(decoding: changed, as: UTF8.self)) == nil, "byte \(index) as \(replacement)")
            }
        }

        let blob = signature.keyID + signature.signature
        func encoded(_ bytes: Data) -> String { "— \(name) \(bytes.base64EncodedString())\n" }
        #expect(verify(encoded(blob.dropLast())) == nil)
        #expect(verify(encoded(blob + Data([0]))) == nil)
        #expect(verify(encoded(Data())) == nil)
        #expect(verify("— \(name) " + String(repeating: "A", count: 1 << 20) + "\n") == nil)
        #expect(verify("— \(name) \(blob.base64EncodedString()) extra\n") == nil)
        #expect(verify("- \(name) \(blob.base64EncodedString())\n") == nil)
        #expect(verify("") == nil)
        // A timestamp past 2^63 - 1 is refused before any signature is checked.
        var late = blob
        late.replaceSubrange(4..<12, with: Data(repeating: 0xFF, count: 8))
        #expect(verify(encoded(late)) == nil)
        // The key id of another key under the same name.
        let other = try Cosignature.sign(text: text, name: name, key: nodeKey, time: time)
        #expect(verify(Self.line(other)) == nil)
        // The right key id, another key's signature bytes.
        #expect(verify(encoded(signature.keyID + other.signature)) == nil)
    }

    @Test func timesOutsideTheSpecRangeAreRefused() throws {
        #expect(Cosignature.timestamp(Date(timeIntervalSince1970: 0)) == 0)
        #expect(Cosignature.timestamp(Date(timeIntervalSince1970: 1.9)) == 1)
        #expect(Cosignature.timestamp(Date(timeIntervalSince1970: -0.5)) == nil)
        #expect(Cosignature.timestamp(Date(timeIntervalSince1970: .nan)) == nil)
        #expect(Cosignature.timestamp(Date(timeIntervalSince1970: .infinity)) == nil)
        #expect(Cosignature.timestamp(Date(timeIntervalSince1970: 1e19)) == nil)
        #expect(Cosignature.timestamp(Date(timeIntervalSince1970: 9.3e18)) == nil)
        #expect(throws: AuditError.self) { try Cosignature.sign(text: text, name: name, key: witnessKey, time: Date(timeIntervalSince1970: -1)) }
        #expect(throws: AuditError.self) { try Cosignature.sign(text: "no newline", name: name, key: witnessKey, time: time) }
        #expect(throws: AuditError.self) { try Cosignature.sign(text: text, name: "two words", key: witnessKey, time: time) }
    }
}
