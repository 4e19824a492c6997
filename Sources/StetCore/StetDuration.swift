/// A span of time as manifests write it: `500ms`, `2s`, `1h30m`, `7d`. Kept in milliseconds.
///
/// Units, largest first and each at most once: `w` (7 days), `d`, `h`, `m`, `s`, `ms`.
///
/// No duration that Stet reads is longer than `maximum`, and none that reaches a timer or a
/// timeout is longer than `maximumTimeout`; the manifest decoder names the bound of each field.
public struct StetDuration: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public let milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// `seconds` as a duration, saturating (NaN is 0): for ages and measured spans, not for input.
    public init(seconds: Double) { milliseconds = Int64(saturating: seconds * 1000) }

    public static func seconds(_ s: Int64) -> StetDuration {
        let (product, overflow) = s.multipliedReportingOverflow(by: 1000)
        return StetDuration(milliseconds: overflow ? (s < 0 ? .min : .max) : product)
    }

    public var seconds: Double { Double(milliseconds) / 1000 }

    /// The longest duration Stet accepts anywhere (a cadence such as `every`, `rpo`,
    /// `verify.restoreTest`, or an option such as `--poll`): 365 days. Every consumer represents
    /// it exactly: Int64 milliseconds, Double seconds added to a date.
    public static let maximum = StetDuration(milliseconds: 365 * 86_400_000)

    /// The longest timeout (health and probe timeouts, `stopTimeout`): one day. Timeouts reach
    /// poll(2) as Int32 milliseconds, which hold 24.8 days; a check or a stop that takes a day
    /// has hung.
    public static let maximumTimeout = StetDuration(milliseconds: 86_400_000)

    /// Why a text is not a duration.
    public enum ParseError: Error, Equatable, Sendable {
        /// Not of the form (empty, unknown unit, units out of order or repeated, a sign or a fraction).
        case malformed
        /// Of the form, but longer than `maximum` (or too long to hold at all).
        case tooLong
    }

    private static let units: [(name: String, ms: Int64)] = [
        ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]

    /// Parses `text`; nil when it is not a duration (empty, unknown unit, a unit out of order or
    /// repeated, a number with a sign or a fraction) or is longer than `maximum`.
    public init?(parsing text: String) {
        guard case .success(let duration) = Self.parse(text) else { return nil }
        self = duration
    }

    /// Parses `text`, saying why it is not a duration. No arithmetic on the digits can overflow:
    /// a number or a sum beyond `maximum` is `tooLong` as soon as it is seen.
    public static func parse(_ text: String) -> Result<StetDuration, ParseError> {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { return .failure(.malformed) }
        var total: Int64 = 0
        var tooLong = false
        var index = 0
        var lastUnit = -1
        while index < bytes.count {
            var value: Int64 = 0
            let start = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                // Digits go on being read (so the form is still checked) but no longer added up.
                if value > maximum.milliseconds {
                    tooLong = true
                } else {
                    value = value * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                }
                index += 1
            }
            guard index > start else { return .failure(.malformed) }
            let unitStart = index
            while index < bytes.count, bytes[index] >= UInt8(ascii: "a"), bytes[index] <= UInt8(ascii: "z") { index += 1 }
            let unit = String(decoding: bytes[unitStart..<index], as: UTF8.self)
            guard let position = units.firstIndex(where: { $0.name == unit }), position > lastUnit else { return .failure(.malformed) }
            lastUnit = position
            // value ≤ 10 × maximum + 9 and total ≤ maximum here, so neither step overflows.
            let (part, overflow) = value.multipliedReportingOverflow(by: units[position].ms)
            if overflow || part > maximum.milliseconds - total { tooLong = true } else { total += part }
        }
        return tooLong ? .failure(.tooLong) : .success(StetDuration(milliseconds: total))
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
        switch Self.parse(text) {
        case .success(let parsed): self = parsed
        case .failure(.malformed):
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a duration: \(text)"))
        case .failure(.tooLong):
            throw DecodingError.dataCorrupted(.init(
                codingPath: decoder.codingPath, debugDescription: "\(text) is longer than \(StetDuration.maximum)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
