public import Foundation

extension Data {
    /// Lowercase hexadecimal, two digits per byte.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses hexadecimal (either case); nil unless every character is a hex digit and the
    /// length is even.
    public init?(hexString: some StringProtocol) {
        let utf8 = Array(hexString.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = Self.nibble(utf8[index]), let low = Self.nibble(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        self.init(bytes)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Decodes standard (`+/`) or URL-safe (`-_`) base64, with or without `=` padding, as DSSE
    /// allows both. Nil for anything else, including whitespace inside the text.
    public init?(lenientBase64 text: String) {
        var normalized = String()
        normalized.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "-": normalized.unicodeScalars.append("+")
            case "_": normalized.unicodeScalars.append("/")
            default: normalized.unicodeScalars.append(scalar)
            }
        }
        let unpadded = normalized.utf8.count - normalized.utf8.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        guard unpadded % 4 != 1 else { return nil }
        if normalized.utf8.count % 4 != 0 {
            normalized += String(repeating: "=", count: 4 - normalized.utf8.count % 4)
        }
        guard let data = Data(base64Encoded: normalized) else { return nil }
        self = data
    }
}
