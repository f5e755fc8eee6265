DROP TABLE IF EXISTS user_limits;
