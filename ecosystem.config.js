// pm2 process file: `pm2 start ecosystem.config.js --env production` (scripts/deploy.sh
// does it after the health gate). The app is the long-lived `assistant monitor serve`.
const path = require("path");

module.exports = {
  apps: [
    {
      name: "assistant-monitor",
      cwd: __dirname,
      script: path.join(__dirname, ".venv", "bin", "assistant"),
      args: "monitor serve",
      interpreter: "none",
      // The settings come from .env.<profile> (in ASSISTANT_CONFIG_DIR) and the
      // environment; the ports here match the .env templates (staging beside production).
      // Two instances share the port (MONITOR_REUSE_PORT): `pm2 reload` restarts them one
      // at a time, waiting for each new one's "ready" (wait_ready), so /health never stops
      // answering. One of them at a time evaluates the alert rules (a lock in the data dir).
      instances: 2,
      exec_mode: "fork",
      wait_ready: true,
      listen_timeout: 10000,
      // Open files: pm2 cannot set a ulimit per app; each instance raises its soft limit
      // at start, up to the hard limit pm2 was started with, to what
      // MONITOR_MAX_CONNECTIONS needs (+ 320: 832 for 512), and warns and holds fewer
      // connections when the hard limit is lower (`ulimit -Hn` where pm2 starts).
      env: {
        ASSISTANT_CONFIG_DIR: __dirname,
        PYTHONUNBUFFERED: "1",
        MONITOR_REUSE_PORT: "true",
        MONITOR_MAX_CONNECTIONS: "512",
      },
      // MONITOR_PORT from the deploying shell wins, as it does for the assistant itself.
      env_development: { ASSISTANT_ENV: "development", MONITOR_PORT: process.env.MONITOR_PORT || "9464" },
      env_staging: { ASSISTANT_ENV: "staging", MONITOR_PORT: process.env.MONITOR_PORT || "9465" },
      env_production: { ASSISTANT_ENV: "production", MONITOR_PORT: process.env.MONITOR_PORT || "9464" },
      autorestart: true,
      max_restarts: 10,
      min_uptime: "10s",
      restart_delay: 2000,
      exp_backoff_restart_delay: 200,
      max_memory_restart: "300M",
      // pm2 stops with SIGINT (PM2_KILL_SIGNAL, daemon-wide): serve drains requests for
      // up to 5 s, flushes and exits 130, as after Ctrl-C (SIGTERM: 0). Give it 8 s.
      kill_timeout: 8000,
      out_file: path.join(__dirname, "logs", "pm2-assistant-monitor.out.log"),
      error_file: path.join(__dirname, "logs", "pm2-assistant-monitor.err.log"),
      merge_logs: true,
      time: true,
    },
  ],
};
