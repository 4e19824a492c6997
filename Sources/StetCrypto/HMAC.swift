public import Foundation

/// HMAC-SHA256 (RFC 2104, tested with RFC 4231's vectors) on Stet's SHA-256.
public enum HMAC {
    /// SHA-256's block size: longer keys are hashed first, shorter ones padded with zeros.
    static let blockSize = 64

    public static func sha256(key: some DataProtocol, _ message: some DataProtocol) -> Data {
        var block = [UInt8](key.count > blockSize ? SHA256.hash(key) : Data(key))
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        let inner = SHA256()
        inner.update(Data(block.map { $0 ^ 0x36 }))
        inner.update(message)
        let outer = SHA256()
        outer.update(Data(block.map { $0 ^ 0x5c }))
        outer.update(inner.finalize())
        return outer.finalize()
    }

    /// A fresh random key of `count` bytes, from the system's cryptographic generator
    /// (getrandom(2) on Linux).
    public static func randomKey(count: Int = SHA256.byteCount) -> Data {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<max(0, count)).map { _ in UInt8.random(in: 0...UInt8.max, using: &generator) })
    }
}
