import Foundation
import StetCrypto
import Testing

/// The C2SP signed-note format, against the reference vector.
@Suite struct SignedNoteTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../Vectors/signed-note").standardized.path

    static func read(_ name: String) throws -> String { try String(contentsOfFile: folder + "/" + name, encoding: .utf8) }

    @Test func referenceNoteVerifiesAndSigningReproducesIt() throws {
        let noteText = try Self.read("peterneumann.note")
        let verifier = try NoteVerifier(verifierKey: try Self.read("peterneumann.vkey").trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(verifier.name == "PeterNeumann")
        #expect(verifier.keyID.hexString == "c74f20a3")
        let note = try SignedNote(parsing: noteText)
        #expect(note.validSigners(among: [verifier]).count == 1)
        #expect(note.rendered == noteText)

        let (name, key) = try PrivateKey.noteSigner(try Self.read("peterneumann.skey").trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(key.publicKey == verifier.publicKey)
        var signed = SignedNote(text: note.text)
        try signed.sign(name: name, with: key)
        #expect(signed.rendered == noteText)
        #expect(try NoteVerifier(name: name, publicKey: key.publicKey).verifierKey
            == (try Self.read("peterneumann.vkey").trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    @Test func anyChangedByteOfTheTextFailsVerification() throws {
        let note = try SignedNote(parsing: try Self.read("peterneumann.note"))
        let verifier = try NoteVerifier(verifierKey: try Self.read("peterneumann.vkey").trimmingCharacters(in: .whitespacesAndNewlines))
        var bytes = Array(note.text.utf8)
        for index in bytes.indices {
            bytes[index] ^= 0x01
            let changed = SignedNote(text: String(decoding: bytes, as: UTF8.self), signatures: note.signatures)
            #expect(changed.validSigners(among: [verifier]).isEmpty, "byte \(index)")
            bytes[index] ^= 0x01
        }
        // Another name with the same key is another key id: not this verifier's signature.
        let renamed = try NoteVerifier(name: "Someone", publicKey: verifier.publicKey)
        #expect(note.validSigners(among: [renamed]).isEmpty)
    }

    @Test func malformedNotesAndKeysAreRefusedClearly() throws {
        #expect(throws: CryptoError.self) { try SignedNote(parsing: "no blank line\n— a AAAA\n") }
        #expect(throws: CryptoError.self) { try SignedNote(parsing: "text\n\n- PeterNeumann AAAAAAAA\n") }
        #expect(throws: CryptoError.self) { try SignedNote(parsing: "text\n\n— PeterNeumann notbase64!\n") }
        #expect(throws: CryptoError.self) { try NoteVerifier(verifierKey: "PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW") }
        #expect(throws: CryptoError.self) { try NoteVerifier(name: "has space", publicKey: try PrivateKey.generate().publicKey) }
    }
}
