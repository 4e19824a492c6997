public import Foundation

/// Deterministic mutations for robustness tests: flip, insert, delete, duplicate or truncate
/// bytes, from a fixed seed so that a failure reproduces.
public struct Mutator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    /// xorshift64*: small, fast, and the same sequence on every machine.
    public mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    public mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

    public mutating func mutate(_ input: Data) -> Data {
        var bytes = [UInt8](input)
        let interesting: [UInt8] = Array("{}[]\":,-\n #&*!|>'\\0aZ9".utf8) + [0, 0xff, 0xc3]
        for _ in 0...below(3) {
            let position = below(bytes.count + 1)
            switch below(6) {
            case 0 where !bytes.isEmpty && position < bytes.count: bytes[position] ^= UInt8(1 << below(8))
            case 1: bytes.insert(interesting[below(interesting.count)], at: position)
            case 2 where position < bytes.count: bytes.remove(at: position)
            case 3: bytes = Array(bytes.prefix(position))
            case 4 where position < bytes.count:
                let end = min(bytes.count, position + below(16) + 1)
                bytes.insert(contentsOf: bytes[position..<end], at: position)
            default:
                if position < bytes.count { bytes[position] = interesting[below(interesting.count)] }
            }
        }
        return Data(bytes)
    }
}
