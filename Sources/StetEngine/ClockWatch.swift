import Foundation
import StetCore

/// Notices the wall clock being stepped (NTP after a long drift, an operator, a virtual machine
/// resumed from a snapshot): the loop keeps its schedules as wall-clock dates, and the boot clock
/// says how much time really passed. A step beyond `tolerance` is reported once, with its size,
/// and the loop moves its schedules by it (`ReconcileLoop.clockJumped`).
struct ClockWatch {
    /// Steps smaller than this are left alone (NTP slews; a busy loop reads the two clocks apart).
    static let tolerance = 2.0

    private var last: (wall: Date, boot: UInt64)?

    /// How far the wall clock moved since the last look beyond what passed on the boot clock,
    /// in seconds (negative: stepped back); nil when it kept pace within `tolerance`.
    mutating func jump(wall: Date = Date(), boot: UInt64 = BootClock.now()) -> Double? {
        defer { last = (wall, boot) }
        guard let last, boot >= last.boot else { return nil }
        let passed = Double(boot - last.boot) / 1e9
        let step = wall.timeIntervalSince(last.wall) - passed
        guard step.isFinite, abs(step) > Self.tolerance else { return nil }
        return step
    }
}
