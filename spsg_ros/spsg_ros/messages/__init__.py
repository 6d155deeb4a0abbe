"""ROS 2 messages of the frontend's inputs and outputs, without rclpy (conversions take the
message classes as an argument): used by the node, the bag reader and the bag writer."""
