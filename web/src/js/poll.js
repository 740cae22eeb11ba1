// Repeats `task` every `intervalMs`, measured from the end of one call to the start of the
// next, so a slow server is never asked twice at once. The task returning false stops it.
// Errors are the task's business (it shows them); they do not stop the polling.
export function poll(task, intervalMs) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    timer = null;
    if (stopped) return;
    let again = true;
    // A hidden tab asks nothing; it catches up at the first tick after it is shown again.
    if (typeof document !== 'undefined' && document.hidden) {
      timer = setTimeout(run, intervalMs);
      return;
    }
    try {
      again = (await task()) !== false;
    } catch (e) {
      console.error(e);
    }
    if (again && !stopped) timer = setTimeout(run, intervalMs);
  };
  run();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
  };
}
