import Foundation
import StetCore
import StetManifest
import StetState
import StetTesting
import Testing

/// Numbers and names from outside: bounded, checked, never a trap.
@Suite struct BoundsTests {
    @Test(arguments: [
        ("365d", StetDuration.ParseError?.none), ("52w1d", nil), ("366d", .tooLong), ("52w2d", .tooLong),
        ("99999999999999999999d", .tooLong), ("99999999999999999999999999999999ms", .tooLong), ("100000000000d", .tooLong),
        ("1d1", .malformed), ("99999999999999999999x", .malformed),
    ] as [(String, StetDuration.ParseError?)])
    func durationsLongerThanTheMaximumAreTooLong(text: String, error: StetDuration.ParseError?) {
        switch StetDuration.parse(text) {
        case .success(let duration):
            #expect(error == nil)
            #expect(duration <= StetDuration.maximum)
        case .failure(let failure):
            #expect(failure == error)
        }
    }

    @Test func durationArithmeticSaturates() {
        #expect(StetDuration.seconds(.max).milliseconds == .max)
        #expect(StetDuration.seconds(.min).milliseconds == .min)
        #expect(StetDuration(seconds: .nan).milliseconds == 0)
        #expect(StetDuration(seconds: .infinity).milliseconds == .max)
        #expect(StetDuration(seconds: 1.5).milliseconds == 1500)
    }

    @Test(arguments: [
        (Double.nan, 0), (.infinity, Int32.max), (-.infinity, Int32.min), (1e300, Int32.max), (-1e300, Int32.min),
        (2_147_483_647.9, Int32.max), (2_147_483_646.9, 2_147_483_646), (-3.7, -3), (0, 0),
        // 30 days of milliseconds: what a 30-day timeout once asked poll(2) for.
        (30 * 86_400_000, Int32.max),
    ] as [(Double, Int32)])
    func int32FromAnyDoubleSaturates(value: Double, expected: Int32) {
        #expect(Int32(saturating: value) == expected)
    }

    @Test func wideIntegersSaturateToo() {
        #expect(Int64(saturating: 9.3e18) == .max)
        #expect(Int64(saturating: -9.3e18) == .min)
        #expect(Int(saturating: Double(1 << 53)) == 1 << 53)
        #expect(UInt32(saturating: -1) == 0)
        #expect(Int.max.addingSaturating(1) == .max)
        #expect(Int.min.addingSaturating(-1) == .min)
    }

    @Test func datesBeyondTheFormatAreWrittenAtItsBounds() {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1e300)) == "9999-12-31T23:59:59Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1e300)) == "0001-01-01T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: .nan)) == "1970-01-01T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_800_000_000.5), milliseconds: true) == "2027-01-15T08:00:00.500Z")
    }
}
