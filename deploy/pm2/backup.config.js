// The weekly backup as a pm2 cron job: `pm2 start deploy/pm2/backup.config.js --env production`
// (from the repository root). pm2 runs it once when started, then every Sunday at 03:30;
// autorestart is off, so between runs it shows as "stopped": that is expected.
const path = require("path");
const root = path.join(__dirname, "..", "..");

module.exports = {
  apps: [
    {
      name: "assistant-backup",
      cwd: root,
      script: path.join(root, ".venv", "bin", "assistant"),
      // Keep 8 weekly backups (two months); put DEST on another disk than the data if you can.
      args: "db backup --keep 8",
      interpreter: "none",
      cron_restart: "30 3 * * 0",
      autorestart: false,
      env: { ASSISTANT_CONFIG_DIR: root, PYTHONUNBUFFERED: "1" },
      env_production: { ASSISTANT_ENV: "production" },
      env_staging: { ASSISTANT_ENV: "staging" },
      out_file: path.join(root, "logs", "pm2-assistant-backup.out.log"),
      error_file: path.join(root, "logs", "pm2-assistant-backup.err.log"),
      time: true,
    },
  ],
};
