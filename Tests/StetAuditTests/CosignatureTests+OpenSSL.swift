import Foundation
import StetAudit
import StetCrypto
import StetTesting
import Testing

/// The cosignature format against code that shares nothing with Stet: the shell writes the
/// signed message exactly as c2sp.org/tlog-cosignature ("Ed25519 signed message") lays it out,
/// computes the key id as its "Format" section says, and `openssl` signs and verifies.
extension CosignatureTests {
    /// The spec's message, written by `printf` from $TS, $ORIGIN, $SIZE and $ROOT into `message`,
    /// and the spec's key id of $NAME and the raw public key in `$1` (PEM) into `keyid`.
    static let specParts = #"""
        set -e
        printf 'cosignature/v1\ntime %s\n%s\n%s\n%s\n' "$TS" "$ORIGIN" "$SIZE" "$ROOT" > message
        { printf '%s\n\004' "$NAME"; openssl pkey -pubin -in "$1" -outform DER | tail -c 32; } \
            | openssl dgst -sha256 -binary | head -c 4 > keyid
        """#

    func specEnvironment(timestamp: UInt64) -> [String: String] {
        let lines = text.split(separator: "\n").map(String.init)
        return ["TS": String(timestamp), "ORIGIN": lines[0], "SIZE": lines[1], "ROOT": lines[2], "NAME": name]
    }

    @Test func stetCosignatureVerifiesWithOpenSSLOverTheSpecMessage() throws {
        try dir.write("witness.pub", try witnessKey.publicKey.pem())
        let signature = try Cosignature.sign(text: text, name: name, key: witnessKey, time: time)
        let blob = signature.keyID + signature.signature
        // The line's base64 split as the spec's "Format" says: key ID (4 bytes) ‖ big-endian
        // timestamp (8) ‖ Ed25519 signature (64).
        let script = Self.specParts + #"""

            printf '%s' "$BLOB" | base64 -d > blob
            test "$(wc -c < blob)" -eq 76
            head -c 4 blob | od -An -tx1 | tr -d ' \n'; echo
            od -An -tx1 keyid | tr -d ' \n'; echo
            head -c 12 blob | tail -c 8 | od -An -tx1 | tr -d ' \n'; echo
            tail -c 64 blob > signature
            openssl pkeyutl -verify -pubin -rawin -inkey "$1" -in message -sigfile signature
            """#
        var environment = specEnvironment(timestamp: 1_679_315_147)
        environment["BLOB"] = blob.base64EncodedString()
        let verified = try run("sh", ["-c", script, "sh", "witness.pub"], in: dir.path, environment: environment)
        #expect(verified.status == 0, "\(verified.combined)")
        let lines = verified.stdout.split(separator: "\n").map(String.init)
        try #require(lines.count >= 4, "\(verified.combined)")
        #expect(lines[0] == lines[1], "the line's key id is SHA-256(name ‖ 0x0A ‖ 0x04 ‖ key)[:4]")
        #expect(lines[2] == "00000000641850cb", "1679315147 as 8 big-endian bytes")
        #expect(lines[3].contains("Signature Verified Successfully"))
        // Stet's own message function writes the same bytes as printf.
        #expect(dir.read("message") == Cosignature.message(text: text, timestamp: 1_679_315_147))

        // One second off in the message, and openssl refuses the signature.
        let wrong = try run("sh", ["-c", script, "sh", "witness.pub"], in: dir.path, environment: environment.merging(["TS": "1679315148"]) { $1 })
        #expect(wrong.status != 0)
    }

    @Test func opensslCosignatureVerifiesInStet() throws {
        let timestamp: UInt64 = 1_800_000_123
        // A key, a signature and the line made by openssl and the shell alone; the timestamp
        // is written as 8 big-endian bytes with printf's octal escapes.
        let script = #"""
            openssl genpkey -algorithm ed25519 -out openssl.key
            openssl pkey -in openssl.key -pubout -out openssl.pub
            """# + "\n" + Self.specParts + #"""

            openssl pkeyutl -sign -rawin -inkey openssl.key -in message -out signature
            : > time
            i=56
            while [ "$i" -ge 0 ]; do
                printf "\\$(printf '%03o' $(( (TS >> i) & 255 )))" >> time
                i=$((i - 8))
            done
            printf '— %s %s\n' "$NAME" "$(cat keyid time signature | base64 -w0)"
            """#
        let made = try run("sh", ["-c", "set -e\n" + script, "sh", "openssl.pub"], in: dir.path, environment: specEnvironment(timestamp: timestamp))
        #expect(made.status == 0, "\(made.combined)")
        let line = made.stdout
        let publicKey = try PublicKey(pem: try #require(dir.read("openssl.pub")))

        #expect(Cosignature.verify(line: line, text: text, name: name, publicKey: publicKey) == timestamp)
        let note = text + "\n" + line
        #expect(Cosignature.witnesses(of: note, among: [name: publicKey]) == [name])
        // Refused over another body, under another name, or for another key.
        #expect(Cosignature.verify(line: line, text: text + "x\n", name: name, publicKey: publicKey) == nil)
        #expect(Cosignature.verify(line: line, text: text, name: name + "x", publicKey: publicKey) == nil)
        #expect(Cosignature.verify(line: line, text: text, name: name, publicKey: witnessKey.publicKey) == nil)
    }
}
