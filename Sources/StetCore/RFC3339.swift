public import Foundation

/// RFC 3339 times in UTC, whole seconds: `2026-11-29T10:00:00Z`.
public enum RFC3339 {
    /// UTC with a `Z`; `milliseconds` adds `.mmm` (audit entries, where order within a second
    /// matters to a reader).
    public static func format(_ date: Date, milliseconds: Bool = false) -> String {
        // Years 0001 to 9999, what the format writes: a date beyond them (arithmetic on a number
        // from outside) is written at the bound, and NaN as 1970, rather than trapping.
        let bounded = min(max((date.timeIntervalSince1970 * 1000).rounded(.down), -62_135_596_800_000), 253_402_300_799_999)
        let totalMilliseconds = Int64(saturating: bounded)
        var seconds = time_t(totalMilliseconds.quotientAndRemainder(dividingBy: 1000).quotient)
        var fraction = Int(totalMilliseconds % 1000)
        if fraction < 0 {
            seconds -= 1
            fraction += 1000
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let base = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        return milliseconds ? base + String(format: ".%03dZ", fraction) : base + "Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; nil for anything else. Read by hand:
    /// state files hold many dates, and a date formatter per date cost most of the loop's idle
    /// time. Fractions count to the nanosecond; leap seconds (`:60`) are refused.
    public static func parse(_ text: String) -> Date? {
        var bytes = Array(text.utf8)[...]
        func number(_ digits: Int) -> Int? {
            guard bytes.count >= digits else { return nil }
            var value = 0
            for byte in bytes.prefix(digits) {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            bytes = bytes.dropFirst(digits)
            return value
        }
        func take(_ allowed: UInt8...) -> Bool {
            guard let first = bytes.first, allowed.contains(first) else { return false }
            bytes = bytes.dropFirst()
            return true
        }
        guard let year = number(4), take(UInt8(ascii: "-")), let month = number(2), take(UInt8(ascii: "-")), let day = number(2),
            take(UInt8(ascii: "T"), UInt8(ascii: "t")), let hour = number(2), take(UInt8(ascii: ":")), let minute = number(2),
            take(UInt8(ascii: ":")), let second = number(2)
        else { return nil }
        guard year >= 1, (1...12).contains(month), (1...daysIn(month, of: year)).contains(day), hour < 24, minute < 60, second < 60
        else { return nil }
        var nanoseconds = 0
        if take(UInt8(ascii: ".")) {
            var digits = 0
            while let byte = bytes.first, (0x30...0x39).contains(byte) {
                if digits < 9 { nanoseconds = nanoseconds * 10 + Int(byte - 0x30) }
                digits += 1
                bytes = bytes.dropFirst()
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 9) { nanoseconds *= 10 }
        }
        var offset = 0
        if take(UInt8(ascii: "Z"), UInt8(ascii: "z")) {
            offset = 0
        } else if let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            bytes = bytes.dropFirst()
            guard let hours = number(2), take(UInt8(ascii: ":")), let minutes = number(2), hours < 24, minutes < 60 else { return nil }
            offset = (hours * 60 + minutes) * 60 * (sign == UInt8(ascii: "+") ? 1 : -1)
        } else {
            return nil
        }
        guard bytes.isEmpty else { return nil }
        let seconds = daysSinceEpoch(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + Double(nanoseconds) / 1e9)
    }

    static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    static func daysIn(_ month: Int, of year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
    /// days_from_civil).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
