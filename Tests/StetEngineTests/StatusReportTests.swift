import Foundation
import StetCore
import StetEngine
import StetServer
import StetState
import StetTesting
import Testing

/// The one status report (`stet status`, `/status`, the status page) and the page's escaping.
@Suite struct StatusReportTests {
    let state = TemporaryDirectory("stet-status-report")

    static let now = Date(timeIntervalSince1970: 1_790_000_000)

    static func service(_ name: String, replicas: Int) -> Service {
        Service(
            metadata: Metadata(name: name), replicas: replicas, run: Service.Run(command: ["serve"], portsStart: 9000),
            health: Service.Health(check: .tcp(address: nil, port: nil)), maxUnavailable: 1, drift: .correct, protect: false)
    }

    static func replica(_ index: Int, status: ObservedReplica.Status = .running, health: ObservedReplica.Health = .healthy)
        -> ObservedReplica
    {
        ObservedReplica(
            index: index, status: status, pid: Int32(100 + index), startTime: 5000, specHash: "sha256:x", port: 9000 + index,
            health: health, restarts: 1, lastExit: status == .exited ? "exited 137" : nil, startedAt: now)
    }

    /// Ready counts running replicas that pass their check, within the promise; a service with
    /// fewer is not met, and then neither are the promises as a whole.
    @Test func readyIsRunningAndHealthyWithinThePromise() throws {
        var desired = DesiredState()
        desired.services = ["web": Self.service("web", replicas: 3), "db": Self.service("db", replicas: 1)]
        var observed = ObservedState()
        observed.services["web"] = ObservedService(name: "web", replicas: [
            0: Self.replica(0), 1: Self.replica(1, health: .unhealthy), 2: Self.replica(2, status: .exited), 3: Self.replica(3),
        ])
        observed.services["db"] = ObservedService(name: "db", replicas: [0: Self.replica(0)])
        observed.services["gone"] = ObservedService(name: "gone", replicas: [0: Self.replica(0)])
        let report = StatusReport(desired: desired, observed: observed, store: FileStateStore(root: state.path), now: Self.now)
        #expect(report.services.map(\.resource.description) == ["Service/db", "Service/gone", "Service/web"])
        let web = try #require(report.services.last)
        #expect(web.promised == 3 && web.ready == 1 && !web.met)
        #expect(web.replicas.map(\.index) == [0, 1, 2, 3])
        #expect(web.replicas[2].lastExit == "exited 137")
        #expect(report.services[0].met)
        // Recorded but no longer promised: nothing is owed.
        #expect(report.services[1].promised == 0 && report.services[1].met)
        #expect(!report.promisesMet)
        #expect(!report.loopRunning)

        observed.services["web"] = ObservedService(name: "web", replicas: [0: Self.replica(0), 1: Self.replica(1), 2: Self.replica(2)])
        #expect(StatusReport(desired: desired, observed: observed, store: FileStateStore(root: state.path), now: Self.now).promisesMet)
    }

    /// Whatever a resource's detail holds (an error from a command, a probe's answer), the page
    /// shows it as text.
    @Test func thePageEscapesEveryText() {
        let page = StatusPage.html(
            release: 7,
            resources: [StatusPage.Resource(name: "Service/web", ok: false, badge: "0/1 ready", detail: "<script>alert('x')</script> & \"q\"")],
            audit: [StatusPage.AuditRow(seq: 3, time: "t", kind: "result", resource: "Service/web", what: "<img src=x onerror=y>")])
        #expect(!page.contains("<script>") && !page.contains("<img"))
        #expect(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"))
        #expect(page.contains("&lt;img src=x onerror=y&gt;"))
        #expect(page.contains("release version 7"))
        #expect(page.contains("<span class=\"bad\">0/1 ready</span>"))
    }
}
