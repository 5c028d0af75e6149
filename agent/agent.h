/*
 * agent.h - `logferry run`: wires the spool watch, the sink runners, the
 * dead-letter spool, signals, reload and segment garbage collection.
 */
#ifndef LOGFERRY_AGENT_H
#define LOGFERRY_AGENT_H

/* Run until SIGTERM/SIGINT. Returns the process exit code: 0 after a clean
 * stop, 1 if the configuration or the state directory is unusable. */
int agent_run(const char *conf_path, const char *module_dir_override);

/* Create `dir` and its parents (mode 0700 for the ones created). Returns 0
 * or -1 with errno. */
int agent_mkdirs(const char *dir);

#endif
