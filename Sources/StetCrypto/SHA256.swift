internal import COpenSSL
public import Foundation

/// The SHA-256 algorithm object, fetched once: fetching it per hash costs more than hashing a
/// small input.
nonisolated(unsafe) private let sha256Algorithm: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)

/// An incremental SHA-256 (OpenSSL's EVP). Feed it with `update`, read it once with `finalize`.
public final class SHA256 {
    /// Size of a digest in bytes.
    public static let byteCount = 32

    private let context: OpaquePointer

    public init() {
        guard let algorithm = sha256Algorithm, let context = EVP_MD_CTX_new() else {
            fatalError("OpenSSL cannot provide SHA-256: \(drainOpenSSLErrors())")
        }
        self.context = context
        guard EVP_DigestInit_ex2(context, algorithm, nil) == 1 else {
            fatalError("OpenSSL cannot start SHA-256: \(drainOpenSSLErrors())")
        }
    }

    private init(context: OpaquePointer) { self.context = context }

    deinit { EVP_MD_CTX_free(context) }

    /// An independent hasher in the same state: finalizing the copy leaves this one going, so a
    /// digest of everything so far costs nothing more than what was added since.
    public func copy() -> SHA256 {
        guard let copy = EVP_MD_CTX_new() else { fatalError("OpenSSL cannot allocate a digest context: \(drainOpenSSLErrors())") }
        guard EVP_MD_CTX_copy_ex(copy, context) == 1 else {
            EVP_MD_CTX_free(copy)
            fatalError("OpenSSL cannot copy a SHA-256 state: \(drainOpenSSLErrors())")
        }
        return SHA256(context: copy)
    }

    /// Starts a new hash on the same context (cheaper than a new `SHA256` for many small inputs).
    public func reset() {
        guard let algorithm = sha256Algorithm, EVP_DigestInit_ex2(context, algorithm, nil) == 1 else {
            fatalError("OpenSSL cannot restart SHA-256: \(drainOpenSSLErrors())")
        }
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    public func update(_ data: some DataProtocol) {
        for region in data.regions {
            region.withUnsafeBytes { update($0) }
        }
    }

    public func finalize() -> Data {
        var digest = Data(count: Self.byteCount)
        var length: UInt32 = 0
        digest.withUnsafeMutableBytes { buffer in
            _ = EVP_DigestFinal_ex(context, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), &length)
        }
        return digest
    }

    /// SHA-256 of `data` in one call.
    public static func hash(_ data: some DataProtocol) -> Data {
        let hasher = SHA256()
        hasher.update(data)
        return hasher.finalize()
    }

    /// SHA-256 of a file's contents, read in 64 KiB blocks so memory stays flat for any size.
    public static func hash(fileAt path: String) throws -> Data {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CryptoError.malformed("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw CryptoError.malformed("cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return hasher.finalize()
    }
}

extension SHA256 {
    /// Whether `data` hashes to `reference` (`sha256:` and 64 lowercase hex digits, as
    /// `sha256Reference` writes it), on this hasher, restarted first. Nothing is allocated: every
    /// file of a release is checked so.
    public func matches(_ data: Data, reference: String) -> Bool {
        reset()
        update(data)
        let prefix: StaticString = "sha256:"
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.byteCount) { digest in
            var length: UInt32 = 0
            guard EVP_DigestFinal_ex(context, digest.baseAddress!, &length) == 1, Int(length) == Self.byteCount else { return false }
            var reference = reference
            return reference.withUTF8 { text in
                guard text.count == prefix.utf8CodeUnitCount + 2 * Self.byteCount,
                    memcmp(text.baseAddress!, prefix.utf8Start, prefix.utf8CodeUnitCount) == 0
                else { return false }
                var at = prefix.utf8CodeUnitCount
                for byte in digest {
                    guard text[at] == digits.utf8Start[Int(byte >> 4)], text[at + 1] == digits.utf8Start[Int(byte & 0x0f)] else {
                        return false
                    }
                    at += 2
                }
                return true
            }
        }
    }
}

extension Data {
    /// `sha256:<hex>`, the digest notation of release indexes and plans.
    public var sha256Reference: String { "sha256:" + SHA256.hash(self).hexString }
}
