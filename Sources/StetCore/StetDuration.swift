/// A span of time as manifests write it: `500ms`, `2s`, `1h30m`, `7d`. Kept in milliseconds.
///
/// Units, largest first and each at most once: `w` (7 days), `d`, `h`, `m`, `s`, `ms`.
public struct StetDuration: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public let milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    public static func seconds(_ s: Int64) -> StetDuration { StetDuration(milliseconds: s * 1000) }

    public var seconds: Double { Double(milliseconds) / 1000 }

    private static let units: [(name: String, ms: Int64)] = [
        ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]

    /// Parses `text`; nil when it is not a duration (empty, unknown unit, a unit out of order or
    /// repeated, a number with a sign or a fraction, or too large to hold).
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return nil }
        var total: Int64 = 0
        var index = 0
        var lastUnit = -1
        while index < bytes.count {
            var value: Int64 = 0
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (plus, o2) = times.addingReportingOverflow(Int64(bytes[index] - UInt8(ascii: "0")))
                guard !o1, !o2 else { return nil }
                value = plus
                index += 1
            }
            guard index > start else { return nil }
            let unitStart = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "a"), bytes[index] <= UInt8(ascii: "z") { index += 1 }
            let unit = String(decoding: bytes[unitStart..<index], as: UTF8.self)
            guard let position = Self.units.firstIndex(where: { $0.name == unit }), position > lastUnit else { return nil }
            lastUnit = position
            let (part, o3) = value.multipliedReportingOverflow(by: Self.units[position].ms)
            let (sum, o4) = total.addingReportingOverflow(part)
            guard !o3, !o4 else { return nil }
            total = sum
        }
        milliseconds = total
    }

    /// The shortest text that parses back to this duration, e.g. `1h30m`, `0s`.
    public var description: String {
        guard milliseconds > 0 else { return "0s" }
        var rest = milliseconds
        var text = ""
        for unit in Self.units where unit.name != "w" && rest >= unit.ms {
            text += "\(rest / unit.ms)\(unit.name)"
            rest %= unit.ms
        }
        return text
    }

    /// To whole seconds (whole minutes past an hour), for ages in messages: `3h12m`, `45s`.
    public var rounded: StetDuration {
        let unit: Int64 = milliseconds >= 3_600_000 ? 60_000 : 1000
        return StetDuration(milliseconds: milliseconds / unit * unit)
    }

    public static func < (lhs: StetDuration, rhs: StetDuration) -> Bool { lhs.milliseconds < rhs.milliseconds }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = StetDuration(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a duration: \(text)"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
