import Foundation
import StetCore
import Testing

/// Prometheus's alert states, step by step.
@Suite struct AlertStateTests {
    let start = Date(timeIntervalSince1970: 1_790_000_000)

    /// The boot clock `seconds` after `start` (the wall clock keeps pace here).
    func boot(_ seconds: Double) -> BootInstant { BootInstant(boot: "boot", nanoseconds: UInt64((1000 + seconds) * 1e9)) }

    @Test func pendingThenFiringThenResolved() {
        var state = AlertState()
        let pendingFor = StetDuration.seconds(30)
        #expect(state.record(ok: true, detail: "200", durationMs: 3, at: start, boot: boot(0), pendingFor: pendingFor) == .none)
        #expect(state.record(ok: false, detail: "refused", durationMs: 1, at: start.addingTimeInterval(10), boot: boot(10), pendingFor: pendingFor) == .pending)
        #expect(state.activeAt == start.addingTimeInterval(10))
        #expect(state.record(ok: false, detail: "refused", durationMs: 1, at: start.addingTimeInterval(39), boot: boot(39), pendingFor: pendingFor) == .none)
        #expect(state.record(ok: false, detail: "refused", durationMs: 1, at: start.addingTimeInterval(40), boot: boot(40), pendingFor: pendingFor) == .firing)
        #expect(state.phase == .firing)
        #expect(state.record(ok: false, detail: "refused", durationMs: 1, at: start.addingTimeInterval(50), boot: boot(50), pendingFor: pendingFor) == .none)
        #expect(state.record(ok: true, detail: "200", durationMs: 2, at: start.addingTimeInterval(60), boot: boot(60), pendingFor: pendingFor) == .resolved)
        #expect(state.phase == .inactive && state.activeAt == nil)
    }

    @Test func aShortFailureClearsWithoutFiringAndZeroForFiresAtOnce() {
        var state = AlertState()
        #expect(state.record(ok: false, detail: "x", durationMs: 1, at: start, boot: boot(0), pendingFor: .seconds(30)) == .pending)
        #expect(state.record(ok: true, detail: "ok", durationMs: 1, at: start.addingTimeInterval(5), boot: boot(5), pendingFor: .seconds(30)) == .cleared)
        var immediate = AlertState()
        #expect(immediate.record(ok: false, detail: "x", durationMs: 1, at: start, boot: boot(0), pendingFor: .seconds(0)) == .firing)
    }
}
