import Foundation

/// Threads of Stet's own for work that blocks: health checks, monitor probes, git. The reconcile
/// loop hands such work here and hears back through its inbox, so none of it stands between a
/// replica's exit and its correction (docs/architecture.md, principle 8). Swift's cooperative pool
/// has one thread per core: a probe blocked there would hold up the loop's passes, which run on
/// it. Also a `TaskExecutor`, for async work such as a probe (`Task(executorPreference:)`).
///
/// At most `limit` threads, started when work waits and no thread is free; they stay for the
/// life of the process.
final class WorkerThreads: TaskExecutor, @unchecked Sendable {
    let name: String
    let limit: Int
    private let condition = NSCondition()
    private var waiting: [@Sendable () -> Void] = []
    private var next = 0
    private var threads = 0
    private var idle = 0

    init(name: String, limit: Int) {
        self.name = name
        self.limit = max(1, limit)
    }

    /// Runs `work` on one of the threads, in the order submitted.
    func submit(_ work: @escaping @Sendable () -> Void) {
        condition.lock()
        defer { condition.unlock() }
        waiting.append(work)
        if waiting.count - next > idle, threads < limit {
            threads += 1
            let label = "\(name)-\(threads)"
            let thread = Thread { [self] in
                Thread.current.name = label
                serve()
            }
            thread.start()
        }
        condition.signal()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        submit { job.runSynchronously(on: executor) }
    }

    private func serve() {
        condition.lock()
        while true {
            while next == waiting.count {
                idle += 1
                condition.wait()
                idle -= 1
            }
            let work = waiting[next]
            next += 1
            if next == waiting.count {
                waiting.removeAll(keepingCapacity: true)
                next = 0
            }
            condition.unlock()
            work()
            condition.lock()
        }
    }
}
