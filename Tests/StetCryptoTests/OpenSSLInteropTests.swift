import Foundation
import StetCrypto
import StetTesting
import Testing

/// Stet's keys and signatures against the `openssl` command line, both ways.
@Suite struct OpenSSLInteropTests {
    let dir = TemporaryDirectory()
    let message = Envelope.preAuthenticationEncoding(
        payloadType: "application/vnd.stet.release+json", payload: Data("{\"version\":1}".utf8))

    @Test func opensslKeyAndSignatureVerifyInStet() throws {
        let keyPath = dir.file("openssl.key")
        #expect(try run("openssl", ["genpkey", "-algorithm", "ed25519", "-out", keyPath]).status == 0)
        chmod(keyPath, 0o600)
        try dir.write("message", message)
        let signed = try run("openssl", ["pkeyutl", "-sign", "-rawin", "-inkey", keyPath, "-in", dir.file("message"), "-out", dir.file("sig")])
        #expect(signed.status == 0, "\(signed.stderr)")

        let key = try PrivateKey(contentsOfFile: keyPath)
        let signature = try #require(dir.read("sig"))
        #expect(key.publicKey.isValidSignature(signature, for: message))
        #expect(!key.publicKey.isValidSignature(signature, for: message + Data([0])))

        // The public key openssl derives loads too, and its id matches the raw key's SHA-256.
        let pub = try run("openssl", ["pkey", "-in", keyPath, "-pubout"])
        let publicKey = try PublicKey(pem: Data(pub.stdout.utf8))
        #expect(publicKey == key.publicKey)
        let der = try run("openssl", ["pkey", "-in", keyPath, "-pubout", "-outform", "DER", "-out", dir.file("pub.der")])
        #expect(der.status == 0)
        let raw = try #require(dir.read("pub.der")).suffix(32)
        #expect(publicKey.keyID == SHA256.hash(raw).hexString)
    }

    @Test func stetKeyAndSignatureVerifyInOpenSSL() throws {
        let key = try PrivateKey.generate()
        try dir.write("stet.pub", try key.publicKey.pem())
        try dir.write("stet.key", try key.pem(), mode: 0o600)
        try dir.write("message", message)
        try dir.write("sig", try key.signature(for: message))
        let verified = try run("openssl", [
            "pkeyutl", "-verify", "-pubin", "-rawin", "-inkey", dir.file("stet.pub"), "-in", dir.file("message"),
            "-sigfile", dir.file("sig"),
        ])
        #expect(verified.status == 0, "\(verified.combined)")
        #expect(verified.stdout.contains("Signature Verified Successfully"))

        try dir.write("other", message + Data("x".utf8))
        let wrong = try run("openssl", [
            "pkeyutl", "-verify", "-pubin", "-rawin", "-inkey", dir.file("stet.pub"), "-in", dir.file("other"),
            "-sigfile", dir.file("sig"),
        ])
        #expect(wrong.status != 0)

        // openssl reads Stet's private key file as PKCS#8 and derives the same public key.
        let derived = try run("openssl", ["pkey", "-in", dir.file("stet.key"), "-pubout"])
        #expect(try PublicKey(pem: Data(derived.stdout.utf8)) == key.publicKey)
    }

    @Test func privateKeyReadableByOthersIsRefused() throws {
        let key = try PrivateKey.generate()
        let path = try dir.write("loose.key", try key.pem(), mode: 0o644)
        #expect {
            try PrivateKey(contentsOfFile: path)
        } throws: { error in
            let crypto = error as? CryptoError
            return crypto?.isInsecureKeyFile == true && crypto!.message.contains("chmod 600")
        }
        chmod(path, 0o640)
        #expect(throws: CryptoError.self) { try PrivateKey(contentsOfFile: path) }
        chmod(path, 0o600)
        #expect(try PrivateKey(contentsOfFile: path).publicKey == key.publicKey)
    }

    @Test func encryptedKeyIsRefusedWithoutPrompting() throws {
        let path = dir.file("enc.key")
        let made = try run("openssl", ["genpkey", "-algorithm", "ed25519", "-aes-256-cbc", "-pass", "pass:secret", "-out", path])
        #expect(made.status == 0)
        chmod(path, 0o600)
        #expect(throws: CryptoError.self) { try PrivateKey(contentsOfFile: path) }
    }

    @Test func otherKeyTypesAreRefusedByName() throws {
        let path = dir.file("ec.key")
        #expect(try run("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path]).status == 0)
        chmod(path, 0o600)
        #expect {
            try PrivateKey(contentsOfFile: path)
        } throws: { error in
            "\(error)".contains("not an Ed25519 key")
        }
    }
}
