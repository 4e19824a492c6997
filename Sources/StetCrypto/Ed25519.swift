internal import COpenSSL
public import Foundation

/// An Ed25519 public key. Immutable once made, so it may be shared between threads: OpenSSL's
/// verify takes a fresh context per call.
public final class PublicKey: @unchecked Sendable, Equatable {
    let pkey: OpaquePointer
    /// The raw 32-byte key.
    public let rawRepresentation: Data

    init(taking pkey: OpaquePointer, what: String) throws {
        self.pkey = pkey
        guard EVP_PKEY_get_id(pkey) == stet_pkey_ed25519() else {
            rawRepresentation = Data()
            throw CryptoError.notEd25519(what)
        }
        rawRepresentation = try Self.raw(pkey)
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A key from its raw 32 bytes.
    public convenience init(rawRepresentation raw: Data) throws {
        guard raw.count == 32 else {
            throw CryptoError.malformed("an Ed25519 public key is 32 bytes, not \(raw.count)")
        }
        let made = raw.withUnsafeBytes {
            EVP_PKEY_new_raw_public_key(stet_pkey_ed25519(), nil, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 32)
        }
        guard let made else { throw CryptoError.openssl("loading a raw Ed25519 public key") }
        try self.init(taking: made, what: "the raw key")
    }

    /// A key from PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`), as
    /// `openssl pkey -pubout` writes it. `source` names the file in errors.
    public convenience init(pem: Data, source: String = "public key") throws {
        let made: OpaquePointer? = try withMemoryBIO(pem) { stet_read_public_key($0) }
        guard let made else {
            throw CryptoError.badKeyFile("\(source): not a PEM public key (SubjectPublicKeyInfo): \(drainOpenSSLErrors())")
        }
        try self.init(taking: made, what: source)
    }

    /// PEM SubjectPublicKeyInfo text.
    public func pem() throws -> Data {
        try writeMemoryBIO("writing a public key") { PEM_write_bio_PUBKEY($0, pkey) }
    }

    /// Lowercase hex SHA-256 of the raw public key: DSSE's `keyid` in Stet envelopes.
    public var keyID: String { SHA256.hash(rawRepresentation).hexString }

    /// True when `signature` is this key's Ed25519 signature of `message`. A malformed signature
    /// is simply not valid.
    public func isValidSignature(_ signature: some DataProtocol, for message: some DataProtocol) -> Bool {
        let sig = Data(signature)
        guard sig.count == 64, let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, nil, nil, pkey) == 1 else {
            _ = drainOpenSSLErrors()
            return false
        }
        return digestVerify(context, signature: sig, message: Data(message))
    }

    public static func == (lhs: PublicKey, rhs: PublicKey) -> Bool { lhs.rawRepresentation == rhs.rawRepresentation }

    /// A verifier that keeps one initialised OpenSSL context for many signatures, as `openssl
    /// speed` does, in an OpenSSL library context of its own: OpenSSL 3 takes a lock on the
    /// shared one in every verification, which keeps threads from scaling. Cheaper than
    /// `isValidSignature` for many signatures; for one thread at a time.
    public func makeVerifier() -> Verifier? { Verifier(key: self) }

    public final class Verifier {
        private let library: OpaquePointer
        private let pkey: OpaquePointer
        private let context: OpaquePointer

        init?(key: PublicKey) {
            guard let library = OSSL_LIB_CTX_new() else { return nil }
            let raw = Array(key.rawRepresentation)
            guard let pkey = EVP_PKEY_new_raw_public_key_ex(library, "ED25519", nil, raw, raw.count) else {
                _ = drainOpenSSLErrors()
                OSSL_LIB_CTX_free(library)
                return nil
            }
            guard let context = EVP_MD_CTX_new() else {
                EVP_PKEY_free(pkey)
                OSSL_LIB_CTX_free(library)
                return nil
            }
            guard EVP_DigestVerifyInit_ex(context, nil, nil, library, nil, pkey, nil) == 1 else {
                _ = drainOpenSSLErrors()
                EVP_MD_CTX_free(context)
                EVP_PKEY_free(pkey)
                OSSL_LIB_CTX_free(library)
                return nil
            }
            self.library = library
            self.pkey = pkey
            self.context = context
        }

        deinit {
            EVP_MD_CTX_free(context)
            EVP_PKEY_free(pkey)
            OSSL_LIB_CTX_free(library)
        }

        /// True when `signature` is the key's Ed25519 signature of `message`.
        public func isValidSignature(_ signature: Data, for message: Data) -> Bool {
            signature.count == 64 && digestVerify(context, signature: signature, message: message)
        }
    }

    static func raw(_ pkey: OpaquePointer) throws -> Data {
        var length = 32
        var bytes = Data(count: 32)
        let ok = bytes.withUnsafeMutableBytes {
            EVP_PKEY_get_raw_public_key(pkey, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
        }
        guard ok == 1, length == 32 else { throw CryptoError.openssl("reading a raw Ed25519 public key") }
        return bytes
    }
}

/// An Ed25519 private key. Signing takes a fresh context per call, so a key may sign from
/// several threads.
public final class PrivateKey: @unchecked Sendable {
    let pkey: OpaquePointer
    public let publicKey: PublicKey

    private init(taking pkey: OpaquePointer, what: String) throws {
        self.pkey = pkey
        guard EVP_PKEY_get_id(pkey) == stet_pkey_ed25519() else { throw CryptoError.notEd25519(what) }
        guard let publicCopy = EVP_PKEY_new_raw_public_key(stet_pkey_ed25519(), nil, try PublicKey.raw(pkey).withUnsafeBytes {
            Array($0.bindMemory(to: UInt8.self))
        }, 32) else {
            throw CryptoError.openssl("deriving the public key")
        }
        publicKey = try PublicKey(taking: publicCopy, what: what)
    }

    deinit { EVP_PKEY_free(pkey) }

    /// A new random key from OpenSSL's generator.
    public static func generate() throws -> PrivateKey {
        guard let context = EVP_PKEY_CTX_new_id(stet_pkey_ed25519(), nil) else {
            throw CryptoError.openssl("creating an Ed25519 key context")
        }
        defer { EVP_PKEY_CTX_free(context) }
        var made: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1, EVP_PKEY_keygen(context, &made) == 1, let made else {
            throw CryptoError.openssl("generating an Ed25519 key")
        }
        return try PrivateKey(taking: made, what: "the generated key")
    }

    /// A key from its 32-byte seed (RFC 8032's private key).
    public convenience init(seed: Data) throws {
        guard seed.count == 32 else { throw CryptoError.malformed("an Ed25519 seed is 32 bytes, not \(seed.count)") }
        let made = seed.withUnsafeBytes {
            EVP_PKEY_new_raw_private_key(stet_pkey_ed25519(), nil, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), 32)
        }
        guard let made else { throw CryptoError.openssl("loading an Ed25519 seed") }
        try self.init(taking: made, what: "the seed")
    }

    /// A key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as `openssl genpkey -algorithm
    /// ed25519` writes it. Encrypted keys are refused rather than prompting for a passphrase.
    public convenience init(pem: Data, source: String = "private key") throws {
        let made: OpaquePointer? = try withMemoryBIO(pem) { stet_read_private_key($0) }
        guard let made else {
            throw CryptoError.badKeyFile(
                "\(source): not an unencrypted PEM private key (PKCS#8): \(drainOpenSSLErrors())")
        }
        try self.init(taking: made, what: source)
    }

    /// Reads a private key file, refusing one that group or others may read: a signing key
    /// that others can copy is no longer evidence of who signed.
    public convenience init(contentsOfFile path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CryptoError.badKeyFile("cannot read private key \(path): \(String(cString: strerror(errno)))")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw CryptoError.insecureKeyFile(
                "private key \(path) is readable by group or others (mode \(String(mode, radix: 8))); "
                    + "run `chmod 600 \(path)`")
        }
        let read: Data?
        do {
            read = try InputFile.read(path, limit: InputFile.Limit.key)
        } catch {
            throw CryptoError.badKeyFile("cannot read private key \(error)")
        }
        guard let data = read else { throw CryptoError.badKeyFile("cannot read private key \(path)") }
        try self.init(pem: data, source: path)
    }

    /// PKCS#8 PEM text (unencrypted: protect the file, not the text).
    public func pem() throws -> Data {
        try writeMemoryBIO("writing a private key") { PEM_write_bio_PrivateKey($0, pkey, nil, nil, 0, nil, nil) }
    }

    /// The 32-byte seed.
    public func seed() throws -> Data {
        var length = 32
        var bytes = Data(count: 32)
        let ok = bytes.withUnsafeMutableBytes {
            EVP_PKEY_get_raw_private_key(pkey, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
        }
        guard ok == 1, length == 32 else { throw CryptoError.openssl("reading an Ed25519 seed") }
        return bytes
    }

    /// The Ed25519 signature (64 bytes) of `message`.
    public func signature(for message: some DataProtocol) throws -> Data {
        let msg = Data(message)
        guard let context = EVP_MD_CTX_new() else { throw CryptoError.openssl("creating a signing context") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, nil, nil, pkey) == 1 else { throw CryptoError.openssl("starting to sign") }
        var length = 64
        var signature = Data(count: 64)
        let ok = signature.withUnsafeMutableBytes { s in
            msg.withUnsafeBytes { m in
                EVP_DigestSign(
                    context, s.baseAddress!.assumingMemoryBound(to: UInt8.self), &length,
                    m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count)
            }
        }
        guard ok == 1, length == 64 else { throw CryptoError.openssl("signing") }
        return signature
    }
}

/// One Ed25519 verification on an initialised verify context (reusable afterwards).
private func digestVerify(_ context: OpaquePointer, signature: Data, message: Data) -> Bool {
    let result = signature.withUnsafeBytes { s in
        message.withUnsafeBytes { m in
            EVP_DigestVerify(
                context, s.baseAddress!.assumingMemoryBound(to: UInt8.self), s.count,
                m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count)
        }
    }
    if result != 1 { _ = drainOpenSSLErrors() }
    return result == 1
}

/// Runs `body` with a read-only memory BIO over `data`.
private func withMemoryBIO<T>(_ data: Data, _ body: (OpaquePointer) throws -> T) throws -> T {
    guard data.count < Int32.max else { throw CryptoError.malformed("key file too large") }
    return try data.withUnsafeBytes { bytes in
        guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else {
            throw CryptoError.openssl("creating a memory buffer")
        }
        defer { BIO_free(bio) }
        return try body(bio)
    }
}

/// Runs `write` on a fresh memory BIO and returns what it wrote.
private func writeMemoryBIO(_ operation: String, _ write: (OpaquePointer) -> Int32) throws -> Data {
    guard let bio = BIO_new(BIO_s_mem()) else { throw CryptoError.openssl(operation) }
    defer { BIO_free(bio) }
    guard write(bio) == 1 else { throw CryptoError.openssl(operation) }
    var pointer: UnsafeMutablePointer<CChar>?
    let length = stet_bio_mem_data(bio, &pointer)
    guard length > 0, let pointer else { throw CryptoError.openssl(operation) }
    return Data(bytes: pointer, count: length)
}
