// Status values (spec/METRICS.md) and how they look.

export const RUN_STATUSES = ['pending', 'submitted', 'provisioning', 'running', 'terminating',
                             'terminated', 'failed', 'done'];
const FINAL = new Set(['terminated', 'failed', 'done', 'aborted']);

// Whether a run or job status is final: nothing changes any more.
export function isFinal(status) {
  return FINAL.has(status);
}

// The colour family of a status: ok (running, idle), busy, wait (queued or starting), stop
// (winding down), done, bad (failed), off (terminated, aborted).
export function tone(status) {
  switch (status) {
    case 'running':
    case 'active':
    case 'idle':
      return 'ok';
    case 'busy':
      return 'busy';
    case 'pending':
    case 'submitted':
    case 'provisioning':
    case 'pulling':
      return 'wait';
    case 'terminating':
      return 'stop';
    case 'done':
      return 'done';
    case 'failed':
      return 'bad';
    default:
      return 'off';
  }
}
