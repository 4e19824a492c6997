import Foundation
import StetCrypto
import StetTesting
import Testing

@Suite struct PrimitiveTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256KnownAnswers(input: String, hex: String) {
        #expect(SHA256.hash(Data(input.utf8)).hexString == hex)
    }

    @Test func sha256OfFileMatchesInMemoryAcrossBlockBoundaries() throws {
        let dir = TemporaryDirectory()
        var bytes = Data(count: 200_000)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ 7) }
        let path = try dir.write("blob", bytes)
        #expect(try SHA256.hash(fileAt: path) == SHA256.hash(bytes))
        let streamed = SHA256()
        stride(from: 0, to: bytes.count, by: 4093).forEach { streamed.update(bytes[$0..<min($0 + 4093, bytes.count)]) }
        #expect(streamed.finalize() == SHA256.hash(bytes))
        #expect(throws: CryptoError.self) { try SHA256.hash(fileAt: dir.file("missing")) }
    }

    @Test func hexRoundTripAndRejects() {
        let data = Data([0, 1, 0xab, 0xff])
        #expect(data.hexString == "0001abff")
        #expect(Data(hexString: "0001ABff") == data)
        #expect(Data(hexString: "abc") == nil)
        #expect(Data(hexString: "zz") == nil)
    }

    @Test func base64AcceptsStandardAndURLSafe() {
        let data = Data([0xfb, 0xff, 0xbf, 0x01])
        #expect(Data(lenientBase64: "+/+/AQ==") == data)
        #expect(Data(lenientBase64: "-_-_AQ==") == data)
        #expect(Data(lenientBase64: "-_-_AQ") == data)
        #expect(Data(lenientBase64: "a") == nil)
        #expect(Data(lenientBase64: "ab c") == nil)
    }

    /// The table decoder agrees with Foundation's decoder once the URL-safe digits are mapped and
    /// the padding completed (how Stet decoded envelopes before): the same bytes wherever it
    /// decodes, and a refusal wherever Foundation refuses. It refuses more in one way only:
    /// padding that is not at the end or longer than the last group lacks (Foundation reads
    /// `"="` as a zero byte and `"AAAA="` as three). Every short text over an alphabet with
    /// padding, both alphabets, a space, a NUL and a byte that is not ASCII; and longer random
    /// ones.
    @Test func lenientBase64AgreesWithFoundation() {
        func reference(_ text: [UInt8]) -> Data? {
            var bytes = text.map { $0 == UInt8(ascii: "-") ? UInt8(ascii: "+") : $0 == UInt8(ascii: "_") ? UInt8(ascii: "/") : $0 }
            let unpadded = bytes.count - bytes.reversed().prefix { $0 == UInt8(ascii: "=") }.count
            guard unpadded % 4 != 1 else { return nil }
            if bytes.count % 4 != 0 { bytes += repeatElement(UInt8(ascii: "="), count: 4 - bytes.count % 4) }
            return Data(base64Encoded: Data(bytes))
        }
        func fast(_ text: [UInt8]) -> Data? { text.withUnsafeBytes { Data(lenientBase64: $0) } }
        let alphabet = Array("AQ/+_-= ".utf8) + [0xC3, 0x00]
        var texts: [[UInt8]] = [[]]
        var frontier: [[UInt8]] = [[]]
        for _ in 1...5 {
            frontier = frontier.flatMap { text in alphabet.map { text + [$0] } }
            texts += frontier
        }
        var random = SplitMix(seed: 0xba5e64)
        let digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_".utf8)
        for _ in 0..<2000 {
            var text = (0..<Int.random(in: 0...40, using: &random)).map { _ in digits.randomElement(using: &random)! }
            text += Array(repeating: UInt8(ascii: "="), count: Int.random(in: 0...3, using: &random))
            if Int.random(in: 0..<8, using: &random) == 0, !text.isEmpty {
                text[Int.random(in: 0..<text.count, using: &random)] = alphabet.randomElement(using: &random)!
            }
            texts.append(text)
        }
        var accepted = 0
        var disagreements: [String] = []
        for text in texts {
            let expected = reference(text)
            if expected != nil { accepted += 1 }
            let padding = text.reversed().prefix { $0 == UInt8(ascii: "=") }.count
            let unpadded = text.count - padding
            let oddPadding = text[..<unpadded].contains(UInt8(ascii: "=")) || padding > (4 - unpadded % 4) % 4
            if fast(text) != expected, !(oddPadding && fast(text) == nil), disagreements.count < 10 {
                disagreements.append("\(String(decoding: text, as: UTF8.self).debugDescription): \(String(describing: fast(text)?.hexString)) "
                    + "against \(String(describing: expected?.hexString))")
            }
        }
        #expect(disagreements.isEmpty, "\(disagreements)")
        for length in 0..<70 {
            let bytes = Data((0..<length).map { _ in UInt8.random(in: 0...255, using: &random) })
            let standard = bytes.base64EncodedString()
            let urlSafe = standard.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            #expect(Data(lenientBase64: standard) == bytes)
            #expect(Data(lenientBase64: String(urlSafe.prefix { $0 != "=" })) == bytes)
        }
        // Enough of both verdicts that agreement means something.
        #expect(accepted > 1000 && texts.count - accepted > 1000, "\(accepted) of \(texts.count) accepted")
    }

    /// The C2SP signed-note reference vector: an independent check of Ed25519 signing from a
    /// seed (RFC 8032 signatures are deterministic, so the bytes must match).
    @Test func ed25519MatchesSignedNoteReferenceVector() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Vectors/signed-note").standardized.path
        let skey = try String(contentsOfFile: folder + "/peterneumann.skey", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let vkey = try String(contentsOfFile: folder + "/peterneumann.vkey", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let note = try String(contentsOfFile: folder + "/peterneumann.note", encoding: .utf8)
        let seed = try #require(Data(lenientBase64: String(skey.split(separator: "+", maxSplits: 4).last!))).dropFirst()
        let pub = try #require(Data(lenientBase64: String(vkey.split(separator: "+", maxSplits: 2).last!))).dropFirst()
        let key = try PrivateKey(seed: Data(seed))
        #expect(key.publicKey.rawRepresentation == Data(pub))

        let parts = note.components(separatedBy: "\n\n")
        let text = parts[0] + "\n"
        let signatureLine = parts[1].trimmingCharacters(in: .newlines)
        let blob = try #require(Data(lenientBase64: String(signatureLine.split(separator: " ").last!)))
        let signature = blob.dropFirst(4)
        #expect(try key.signature(for: Data(text.utf8)) == Data(signature))
        #expect(key.publicKey.isValidSignature(signature, for: Data(text.utf8)))
        #expect(!key.publicKey.isValidSignature(signature, for: Data((text + " ").utf8)))
    }
}

/// The strict base64 reader that audit lines use.
@Suite struct CanonicalBase64Tests {
    @Test func agreesWithFoundationOnEveryLengthAndRejectsOtherSpellings() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let data = Data((0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) })
            let text = Array(data.base64EncodedString().utf8)
            #expect(text.withUnsafeBytes { Data(canonicalBase64: $0) } == data, "length \(length)")
            // Any other byte in place of each digit: either not base64 or not the same bytes.
            for index in text.indices {
                var changed = text
                changed[index] ^= 0x01
                let decoded = changed.withUnsafeBytes { Data(canonicalBase64: $0) }
                #expect(decoded != data, "length \(length), digit \(index)")
            }
        }
        // Unused bits set, missing padding, whitespace: refused.
        for text in ["QR==", "QUF=", "QQ", "QQ==\n", "Q Q==", "=QQ=", "Q===", "QQ=A"] {
            #expect(Array(text.utf8).withUnsafeBytes { Data(canonicalBase64: $0) } == nil, "\(text)")
        }
        #expect(Array("QQ==".utf8).withUnsafeBytes { Data(canonicalBase64: $0) } == Data("A".utf8))
    }
}
