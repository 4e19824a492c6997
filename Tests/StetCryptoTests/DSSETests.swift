import Foundation
import StetCrypto
import StetTesting
import Testing

@Suite struct DSSETests {
    @Test func preAuthenticationEncodingMatchesTheSpecification() {
        // The example from the DSSE protocol document.
        let pae = Envelope.preAuthenticationEncoding(payloadType: "http://example.com/HelloWorld", payload: Data("hello world".utf8))
        #expect(String(decoding: pae, as: UTF8.self) == "DSSEv1 29 http://example.com/HelloWorld 11 hello world")
        // Lengths count bytes, not characters.
        let utf8 = Envelope.preAuthenticationEncoding(payloadType: "t", payload: Data("é".utf8))
        #expect(String(decoding: utf8, as: UTF8.self) == "DSSEv1 1 t 2 é")
    }

    @Test func roundTripAndSigning() throws {
        let alice = try PrivateKey.generate(), bob = try PrivateKey.generate(), eve = try PrivateKey.generate()
        var envelope = Envelope(payloadType: "application/x-test", payload: Data("{\"a\":1}".utf8))
        try envelope.sign(with: alice)
        try envelope.sign(with: alice)  // replaces, not duplicates
        try envelope.sign(with: bob)
        #expect(envelope.signatures.count == 2)
        for pretty in [true, false] {
            let parsed = try Envelope(json: envelope.json(pretty: pretty))
            #expect(parsed == envelope)
            #expect(parsed.validSigners(among: [alice.publicKey, bob.publicKey, eve.publicKey]).count == 2)
            #expect(parsed.validSigners(among: [eve.publicKey]).isEmpty)
        }
        #expect(!String(decoding: envelope.json(), as: UTF8.self).contains("\n"))
    }

    @Test func aKeySigningTwiceCountsOnce() throws {
        let alice = try PrivateKey.generate()
        var envelope = Envelope(payloadType: "t", payload: Data("p".utf8))
        try envelope.sign(with: alice)
        // A copy of the same signature under another key id hint still counts once.
        envelope.signatures.append(.init(keyID: "00", signature: envelope.signatures[0].signature))
        #expect(envelope.validSigners(among: [alice.publicKey]).count == 1)
    }

    @Test func urlSafeBase64IsAccepted() throws {
        let key = try PrivateKey.generate()
        var envelope = Envelope(payloadType: "t", payload: Data([0xfb, 0xff, 0xfe]))
        try envelope.sign(with: key)
        let urlSafe = String(decoding: envelope.json(), as: UTF8.self)
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        let parsed = try Envelope(json: Data(urlSafe.utf8))
        #expect(parsed.payload == envelope.payload)
        #expect(parsed.validSigners(among: [key.publicKey]).count == 1)
    }

    @Test(arguments: [
        ("[]", "expected a JSON object"),
        ("{\"payload\":\"\",\"signatures\":[]}", "payloadType: expected a string"),
        ("{\"payloadType\":\"t\",\"payload\":\"***\",\"signatures\":[]}", "payload: expected base64"),
        ("{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":{}}", "signatures: expected a list"),
        ("{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[{\"keyid\":1,\"sig\":\"\"}]}", "signatures[0].keyid"),
        ("{\"payloadType\":\"t\",\"payload\":\"\",\"signatures\":[{\"keyid\":\"\"}]}", "signatures[0].sig"),
        ("{", "not JSON"),
    ])
    func malformedEnvelopesNameTheField(json: String, expected: String) {
        #expect {
            try Envelope(json: Data(json.utf8))
        } throws: { error in
            "\(error)".contains(expected)
        }
    }
}
