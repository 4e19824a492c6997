import Foundation
import StetCrypto
import StetTesting
import Testing

/// Thousands of deterministic mutations of valid inputs: each must give a value or an error,
/// never a crash.
@Suite struct MalformedInputTests {
    @Test func mutatedEnvelopesNeverCrash() throws {
        let key = try PrivateKey.generate()
        var envelope = Envelope(payloadType: "application/vnd.stet.release+json", payload: Data("{\"version\":1}".utf8))
        try envelope.sign(with: key)
        let original = envelope.json(pretty: true)
        var generator = Mutator(seed: 1)
        var accepted = 0
        for _ in 0..<3000 {
            let mutated = generator.mutate(original)
            if let parsed = try? Envelope(json: mutated), parsed.validSigners(among: [key.publicKey]).count == 1 {
                // Only mutations that leave the signed bytes alone may still verify.
                #expect(parsed.signedBytes == envelope.signedBytes)
                accepted += 1
            }
        }
        #expect(accepted < 3000)
    }

    @Test func mutatedPEMNeverCrashes() throws {
        let key = try PrivateKey.generate()
        let privatePEM = try key.pem(), publicPEM = try key.publicKey.pem()
        var generator = Mutator(seed: 2)
        for _ in 0..<2000 {
            if let loaded = try? PrivateKey(pem: generator.mutate(privatePEM)) { _ = loaded.publicKey.keyID }
            if let loaded = try? PublicKey(pem: generator.mutate(publicPEM)) { _ = loaded.keyID }
        }
        for length in 0..<privatePEM.count where length % 7 == 0 {
            _ = try? PrivateKey(pem: privatePEM.prefix(length))
        }
    }
}
