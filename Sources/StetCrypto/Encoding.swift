public import Foundation

extension Data {
    /// Lowercase hexadecimal, two digits per byte.
    public var hexString: String {
        // Written straight into the string's storage: every file of a release is named by one.
        let digits: StaticString = "0123456789abcdef"
        return withUnsafeBytes { bytes in
            String(unsafeUninitializedCapacity: bytes.count * 2) { out in
                for (index, byte) in bytes.enumerated() {
                    out[2 * index] = digits.utf8Start[Int(byte >> 4)]
                    out[2 * index + 1] = digits.utf8Start[Int(byte & 0x0f)]
                }
                return bytes.count * 2
            }
        }
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

    /// Parses hexadecimal bytes (either case); nil unless every byte is a hex digit and the
    /// count is even.
    public init?(hexDigits digits: Slice<UnsafeRawBufferPointer>) {
        guard digits.count % 2 == 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: digits.count / 2)
        var index = digits.startIndex
        var out = 0
        while index < digits.endIndex {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes[out] = high << 4 | low
            out += 1
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
    /// envelopes written by other tools may use either. Nil for anything else (spaces, line
    /// breaks, padding where none belongs).
    public init?(lenientBase64 text: String) {
        var text = text
        guard let data = text.withUTF8({ Data(lenientBase64: UnsafeRawBufferPointer($0)) }) else { return nil }
        self = data
    }

    /// `init?(lenientBase64:)` on the text's UTF-8 bytes, decoded in place through a table: a
    /// release index's payload is megabytes of base64, read before anything else can start.
    /// The bits a last, partial group leaves over are ignored, as Foundation's decoder ignores
    /// them (the bytes are what is hashed and signed, not their text).
    public init?(lenientBase64 text: UnsafeRawBufferPointer) {
        var count = text.count
        while count > 0, text[count - 1] == UInt8(ascii: "=") { count -= 1 }
        let tail = count % 4
        // One digit left over holds 6 bits, not a byte; padding never exceeds what the last
        // group lacks.
        guard tail != 1, text.count - count <= (4 - tail) % 4 else { return nil }
        let table = base64LenientValues
        var out = [UInt8](repeating: 0, count: count / 4 * 3 + (tail == 0 ? 0 : tail - 1))
        let complete = count - tail
        let decoded = out.withUnsafeMutableBufferPointer { out -> Bool in
            var i = 0
            var o = 0
            var invalid: UInt8 = 0
            while i < complete {
                let a = table[Int(text[i])], b = table[Int(text[i + 1])], c = table[Int(text[i + 2])], d = table[Int(text[i + 3])]
                invalid |= a | b | c | d
                let bits = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                out[o] = UInt8(truncatingIfNeeded: bits >> 16)
                out[o + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                out[o + 2] = UInt8(truncatingIfNeeded: bits)
                i += 4
                o += 3
            }
            if tail > 0 {
                let a = table[Int(text[i])], b = table[Int(text[i + 1])], c = tail == 3 ? table[Int(text[i + 2])] : 0
                invalid |= a | b | c
                let bits = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6
                out[o] = UInt8(truncatingIfNeeded: bits >> 16)
                if tail == 3 { out[o + 1] = UInt8(truncatingIfNeeded: bits >> 8) }
            }
            // Digits are below 64; the table marks every other byte 0xFF.
            return invalid < 64
        }
        guard decoded else { return nil }
        self.init(out)
    }

    /// Decodes standard, padded base64 only in its canonical form: the one text `base64EncodedString()`
    /// gives for these bytes (so no unused bit may be set). Nil for anything else. For signed
    /// lines, where two texts for the same bytes would let a byte change unnoticed.
    public init?(canonicalBase64 text: UnsafeRawBufferPointer) {
        let count = text.count
        guard count % 4 == 0 else { return nil }
        if count == 0 {
            self.init()
            return
        }
        let padding = text[count - 1] == 0x3D ? (text[count - 2] == 0x3D ? 2 : 1) : 0
        var out = [UInt8](repeating: 0, count: count / 4 * 3 - padding)
        let table = base64Values
        var o = 0
        var i = 0
        while i < count {
            let last = i + 4 == count
            let a = table[Int(text[i])], b = table[Int(text[i + 1])]
            let c = last && padding == 2 ? 0 : table[Int(text[i + 2])]
            let d = last && padding >= 1 ? 0 : table[Int(text[i + 3])]
            guard a | b | c | d < 64 else { return nil }
            let bits = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
            out[o] = UInt8(truncatingIfNeeded: bits >> 16)
            if o + 1 < out.count { out[o + 1] = UInt8(truncatingIfNeeded: bits >> 8) } else if bits & 0xFFFF != 0 { return nil }
            if o + 2 < out.count { out[o + 2] = UInt8(truncatingIfNeeded: bits) } else if o + 1 < out.count, bits & 0xFF != 0 { return nil }
            o += 3
            i += 4
        }
        self.init(out)
    }
}

/// Value of each byte as a base64 digit; 0xFF for bytes that are not one.
private let base64Values: [UInt8] = {
    var table = [UInt8](repeating: 0xFF, count: 256)
    for (index, byte) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() {
        table[Int(byte)] = UInt8(index)
    }
    return table
}()

/// `base64Values` with the URL-safe digits too: `-` for `+`, `_` for `/`.
private let base64LenientValues: [UInt8] = {
    var table = base64Values
    table[Int(UInt8(ascii: "-"))] = 62
    table[Int(UInt8(ascii: "_"))] = 63
    return table
}()
