// The workerd processes a benchmark started and their CPU time, from /proc (Linux), shared by
// bench.mjs and jwt-verify.mjs.
import fs from "node:fs";

/** The pids of the workerd processes whose parent is this process. */
export function workerdChildren() {
  const pids = new Set();
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (comm === "workerd" && ppid === process.pid) pids.add(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/** utime + stime of `pid`, in clock ticks (USER_HZ). */
export function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}
